/* Per-thread cache of record-sized blocks; see blocks.h. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"

#define RS_BLK_CACHE 64 /* free blocks kept per class and thread */

enum { CLS_NONE, CLS_RECORD, CLS_RX, CLS_COUNT };

static const size_t cls_size[CLS_COUNT] = {0, RS_BLK_RECORD, RS_BLK_RX};

/* In front of every block; 16 bytes keep malloc's alignment for the payload. */
struct blk {
    uint32_t cls;
    uint32_t refs;
    union {
        size_t size;      /* CLS_NONE: the size asked for */
        struct blk *next; /* in the cache */
    };
};

static __thread struct blk *cache[CLS_COUNT];
static __thread unsigned cache_len[CLS_COUNT];
/* Signed: an IIoMux deleted on another thread than the one that made it leaves one count
 * below zero (no cache there) and the other above (emptied when that thread exits). */
static __thread int thread_muxes;
static __thread struct blk *last_record;
static __thread bool tracking;

/* Records from a quarter up to the class size share one block size, so a connection's
 * buffers fit whatever record comes next. */
static uint32_t class_of(size_t size)
{
    if (size > RS_BLK_RECORD / 4 && size <= RS_BLK_RECORD)
        return CLS_RECORD;
    if (size > RS_BLK_RECORD && size <= RS_BLK_RX)
        return CLS_RX;
    return CLS_NONE;
}

static size_t payload_size(const struct blk *b)
{
    return b->cls == CLS_NONE ? b->size : cls_size[b->cls];
}

void *rs_blk_alloc(size_t size)
{
    uint32_t cls = class_of(size);
    struct blk *b;
    if (cls != CLS_NONE && cache[cls]) {
        b = cache[cls];
        cache[cls] = b->next;
        cache_len[cls]--;
    } else {
        b = malloc(sizeof(*b) + (cls == CLS_NONE ? size : cls_size[cls]));
        if (!b)
            return NULL;
    }
    b->cls = cls;
    b->refs = 1;
    if (cls == CLS_NONE)
        b->size = size;
    if (cls == CLS_RECORD && tracking)
        last_record = b;
    return b + 1;
}

static void release(struct blk *b)
{
    if (b == last_record)
        last_record = NULL;
    uint32_t cls = b->cls;
    if (cls != CLS_NONE && thread_muxes > 0 && cache_len[cls] < RS_BLK_CACHE) {
        b->next = cache[cls];
        cache[cls] = b;
        cache_len[cls]++;
        return;
    }
    free(b);
}

void rs_blk_free(void *p)
{
    if (!p)
        return;
    struct blk *b = (struct blk *)p - 1;
    if (--b->refs == 0)
        release(b);
}

void rs_blk_ref(void *p)
{
    ((struct blk *)p - 1)->refs++;
}

void *rs_blk_realloc(void *p, size_t size)
{
    if (!p)
        return rs_blk_alloc(size);
    struct blk *b = (struct blk *)p - 1;
    size_t have = payload_size(b);
    if (b->cls != CLS_NONE && class_of(size) == b->cls)
        return p;
    void *n = rs_blk_alloc(size);
    if (!n)
        return NULL;
    memcpy(n, p, have < size ? have : size);
    rs_blk_free(p);
    return n;
}

void rs_blk_track(bool on)
{
    tracking = on;
    last_record = NULL;
}

void *rs_blk_last_record(size_t *size)
{
    if (!last_record)
        return NULL;
    *size = RS_BLK_RECORD;
    return last_record + 1;
}

static void empty_cache(void *unused)
{
    (void)unused;
    for (int c = 0; c < CLS_COUNT; c++) {
        while (cache[c]) {
            struct blk *b = cache[c];
            cache[c] = b->next;
            free(b);
        }
        cache_len[c] = 0;
    }
}

/* A thread that ends with a loop never deleted (or deleted on another thread) would
 * leave its cache behind: the key's destructor empties it at thread exit. */
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void make_exit_key(void)
{
    pthread_key_create(&exit_key, empty_cache);
}

void rs_blk_thread_muxes(int delta)
{
    thread_muxes += delta;
    if (thread_muxes > 0) {
        if (delta > 0 && thread_muxes == 1) {
            pthread_once(&exit_once, make_exit_key);
            pthread_setspecific(exit_key, &exit_key); /* any non-NULL value */
        }
        return;
    }
    empty_cache(NULL);
}
