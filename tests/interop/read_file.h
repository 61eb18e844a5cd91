/* The interop test programs' one file reader: a certificate PEM into memory, or exit(2). */
#ifndef RS_INTEROP_READ_FILE_H
#define RS_INTEROP_READ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0, r;
    do {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 16384;
            if (!(buf = realloc(buf, cap))) {
                perror("realloc");
                exit(2);
            }
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
    } while (r > 0);
    if (ferror(f)) {
        perror(path);
        exit(2);
    }
    fclose(f);
    *len = n;
    return buf;
}

#endif
