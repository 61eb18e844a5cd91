#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "reactor.h"

void *rs_queue_push(struct rs_queue *q, size_t size, const char *who)
{
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 8;
        uint8_t *v = malloc(cap * size);
        if (!v)
            rs_fatal("%s: out of memory", who);
        /* unrolled into the new array from its start, in order */
        size_t first = q->cap - q->head < q->len ? q->cap - q->head : q->len;
        if (q->len) {
            memcpy(v, q->v + q->head * size, first * size);
            memcpy(v + first * size, q->v, (q->len - first) * size);
        }
        free(q->v);
        q->v = v;
        q->head = 0;
        q->cap = cap;
    }
    return q->v + ((q->head + q->len++) % q->cap) * size;
}

void *rs_array_grow(void *v, size_t *cap, size_t len, size_t size, size_t first, const char *who)
{
    if (len < *cap)
        return v;
    size_t n = *cap ? *cap * 2 : first;
    void *grown = realloc(v, n * size);
    if (!grown)
        rs_fatal("%s: out of memory", who);
    *cap = n;
    return grown;
}

void rs_queue_free(struct rs_queue *q)
{
    free(q->v);
    memset(q, 0, sizeof(*q));
}
