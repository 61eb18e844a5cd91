/* Intrusive doubly linked list: O(1) unlink lets a deleted socket leave any queue. */
#ifndef RS_LIST_H
#define RS_LIST_H

#include <stdbool.h>
#include <stddef.h>

#define rs_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct rs_list {
    struct rs_list *prev, *next;
};

static inline void rs_list_init(struct rs_list *head)
{
    head->prev = head->next = head;
}

static inline bool rs_list_empty(const struct rs_list *head)
{
    return head->next == head;
}

/* A node that is on no list points at itself; that doubles as the "queued" flag. */
static inline bool rs_list_linked(const struct rs_list *node)
{
    return node->next != node && node->next != NULL;
}

static inline void rs_list_push_back(struct rs_list *head, struct rs_list *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

static inline void rs_list_unlink(struct rs_list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
}

static inline struct rs_list *rs_list_pop_front(struct rs_list *head)
{
    struct rs_list *n = head->next;
    if (n == head)
        return NULL;
    rs_list_unlink(n);
    return n;
}

/* Moves every node of src to the end of dst; src ends empty. */
static inline void rs_list_splice(struct rs_list *dst, struct rs_list *src)
{
    if (rs_list_empty(src))
        return;
    src->next->prev = dst->prev;
    dst->prev->next = src->next;
    src->prev->next = dst;
    dst->prev = src->prev;
    rs_list_init(src);
}

#endif
