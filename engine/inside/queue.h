/* A growable FIFO ring of fixed-size elements: pushed at the back, popped at the front,
 * visited from the front. It doubles when full and never shrinks, so a queue that has
 * grown to its working size allocates nothing more. All-zero is an empty queue. */
#ifndef RS_QUEUE_H
#define RS_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct rs_queue {
    uint8_t *v;
    size_t head, len, cap; /* in elements */
};

/* Room for one more element at the back, for the caller to fill (aborts when out of
 * memory, naming who: the engine cannot go on without the entry). */
void *rs_queue_push(struct rs_queue *q, size_t size, const char *who);
void rs_queue_free(struct rs_queue *q);

/* The i-th element from the front (i < len). */
static inline void *rs_queue_at(const struct rs_queue *q, size_t size, size_t i)
{
    return q->v + ((q->head + i) % q->cap) * size;
}

/* Drops the front element (len > 0). */
static inline void rs_queue_pop(struct rs_queue *q)
{
    q->head = (q->head + 1) % q->cap;
    q->len--;
}

/* A growable array v of *cap elements of size, len of them used: returns it with room for
 * one more, doubled (first: the first capacity) when full. Aborts naming who when out of
 * memory. */
void *rs_array_grow(void *v, size_t *cap, size_t len, size_t size, size_t first, const char *who);

/* Typed forms: RS_QUEUE_PUSH(&q, struct x, "who") is a struct x *. */
#define RS_QUEUE_PUSH(q, type, who) ((type *)rs_queue_push((q), sizeof(type), (who)))
#define RS_QUEUE_AT(q, type, i)     ((type *)rs_queue_at((q), sizeof(type), (i)))

#endif
