/* Record-sized memory blocks, cached per loop thread, so a TLS connection in steady
 * state neither allocates nor faults in memory per record: wolfSSL's record buffers
 * (its allocator is rs_blk_*), the TLS sockets' ciphertext receive buffers.
 *
 * rs_blk_alloc/realloc/free are malloc-compatible for any size; sizes of a block class
 * come from and go back to the calling thread's cache while the thread has an IIoMux.
 * The cache is emptied when the thread deletes its last IIoMux (nothing a loop thread
 * allocated outlives it). Blocks carry a reference count: a block whose bytes are
 * being sent stays alive after its owner frees it until the sender lets go. */
#ifndef RS_BLOCKS_H
#define RS_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>

#define RS_BLK_RECORD 20480 /* the largest TLS record with wolfSSL's headroom */
#define RS_BLK_RX     65536 /* a TLS socket's ciphertext receive buffer: several records */

void *rs_blk_alloc(size_t size);
void *rs_blk_realloc(void *p, size_t size);
void rs_blk_free(void *p); /* drops a reference; the last one releases the block */

/* Between rs_blk_track(true) and rs_blk_track(false) the thread notes the last
 * record-class block it allocated and still holds: rs_blk_last_record gives its
 * payload (NULL when none), which the TLS layer finds wolfSSL's output buffer with.
 * Outside such a window it is NULL: a block noted earlier might since have been
 * freed by another thread. */
void rs_blk_track(bool on);
void *rs_blk_last_record(size_t *size);
void rs_blk_ref(void *p);

/* The thread's IIoMux count changed: 0 empties the cache. */
void rs_blk_thread_muxes(int delta);

#endif
