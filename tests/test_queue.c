/* The engine's FIFO ring (engine/inside/queue.h): order kept across growth and wrap-around,
 * elements of any size, empty when all-zero and after rs_queue_free. */
#include <criterion/criterion.h>
#include <string.h>

#include "queue.h"

struct item {
    unsigned n;
    char pad[13]; /* an odd size */
};

Test(queue, keeps_order_across_growth_and_wrap)
{
    struct rs_queue q = {0};
    unsigned next_in = 0, next_out = 0;
    /* push 3, pop 2, over and over: the head walks round the ring while it grows */
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 3; i++) {
            struct item *e = RS_QUEUE_PUSH(&q, struct item, "test");
            e->n = next_in++;
            memset(e->pad, (int)e->n, sizeof(e->pad));
        }
        for (int i = 0; i < 2; i++) {
            struct item *e = RS_QUEUE_AT(&q, struct item, 0);
            cr_assert_eq(e->n, next_out, "round %d: %u where %u was due", round, e->n, next_out);
            cr_assert_eq((unsigned char)e->pad[12], (unsigned char)next_out);
            rs_queue_pop(&q);
            next_out++;
        }
        cr_assert_eq(q.len, next_in - next_out);
        for (size_t i = 0; i < q.len; i++) /* every one in place, front to back */
            cr_assert_eq(RS_QUEUE_AT(&q, struct item, i)->n, next_out + i);
    }
    cr_assert_geq(q.cap, q.len);
    cr_assert_eq(q.cap & (q.cap - 1), 0, "it grows by doubling");
    rs_queue_free(&q);
    cr_assert(q.v == NULL && q.len == 0 && q.cap == 0 && q.head == 0);
}

Test(queue, growth_with_the_head_mid_ring)
{
    struct rs_queue q = {0};
    for (unsigned i = 0; i < 8; i++)
        *RS_QUEUE_PUSH(&q, unsigned, "test") = i;
    for (unsigned i = 0; i < 5; i++)
        rs_queue_pop(&q); /* head at 5 of 8 */
    for (unsigned i = 8; i < 13; i++)
        *RS_QUEUE_PUSH(&q, unsigned, "test") = i; /* wraps, then grows with 3 + 5 split */
    cr_assert_eq(q.len, 8);
    for (unsigned i = 0; i < q.len; i++)
        cr_assert_eq(*RS_QUEUE_AT(&q, unsigned, i), 5 + i);
    rs_queue_free(&q);
}

Test(queue, a_grown_queue_allocates_no_more)
{
    struct rs_queue q = {0};
    for (unsigned i = 0; i < 64; i++)
        *RS_QUEUE_PUSH(&q, unsigned, "test") = i;
    while (q.len)
        rs_queue_pop(&q);
    uint8_t *v = q.v;
    for (int round = 0; round < 1000; round++) {
        *RS_QUEUE_PUSH(&q, unsigned, "test") = (unsigned)round;
        rs_queue_pop(&q);
    }
    cr_assert_eq(q.v, v, "the same memory throughout");
    rs_queue_free(&q);
}
