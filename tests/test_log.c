/* Tests for IInstanceLog: line format, flag filtering, RINGSOCK_LOG, hex dumps, sinks. */
#include <criterion/criterion.h>

#include <ringsock/log.h>

#include "log_internal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ALL_FLAGS ((uint64_t)(LOG_TLS | LOG_TCP | LOG_LDS | LOG_UDP | LOG_DTLS))

struct capture {
    char **lines;
    size_t count;
};

static void capture_sink(void *ctx, const char *line)
{
    struct capture *c = ctx;
    c->lines = realloc(c->lines, (c->count + 1) * sizeof(*c->lines));
    cr_assert_not_null(c->lines);
    c->lines[c->count] = strdup(line);
    cr_assert_not_null(c->lines[c->count]);
    c->count++;
}

static void capture_free(struct capture *c)
{
    for (size_t i = 0; i < c->count; i++)
        free(c->lines[i]);
    free(c->lines);
    c->lines = NULL;
    c->count = 0;
}

/* The timestamp varies, so check its shape and compare everything after it exactly. */
static void assert_line(const char *line, const char *rest)
{
    static const char shape[] = "dd:dd:dd.ddd ";
    cr_assert_geq(strlen(line), sizeof(shape) - 1, "line too short: '%s'", line);
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd')
            cr_assert(isdigit((unsigned char)line[i]), "bad timestamp in '%s'", line);
        else
            cr_assert_eq(line[i], shape[i], "bad timestamp in '%s'", line);
    }
    cr_assert_str_eq(line + sizeof(shape) - 1, rest);
}

static IInstanceLog *make_log(const char *app, uint64_t flags, struct capture *c)
{
    IInstanceLog *log = IInstanceLog_Create(app, flags);
    cr_assert_not_null(log);
    IInstanceLog_SetSink(log, capture_sink, c);
    return log;
}

/* A developer's own RINGSOCK_LOG must not change what the tests see. */
static void clear_env(void)
{
    unsetenv("RINGSOCK_LOG");
}

TestSuite(log, .init = clear_env);

Test(log, line_has_app_flag_and_message)
{
    struct capture c = {0};
    IInstanceLog *log = make_log("myapp", LOG_TCP, &c);

    IInstanceLog_Log(log, LOG_TCP, "hello %d %s", 42, "world");
    cr_assert_eq(c.count, 1);
    assert_line(c.lines[0], "myapp tcp: hello 42 world");

    IInstanceLog_Delete(log);
    capture_free(&c);
}

Test(log, flag_names_are_lowercase)
{
    struct capture c = {0};
    IInstanceLog *log = make_log("a", ALL_FLAGS | LOG_DATA, &c);

    IInstanceLog_Log(log, LOG_TLS, "x");
    IInstanceLog_Log(log, LOG_TCP, "x");
    IInstanceLog_Log(log, LOG_LDS, "x");
    IInstanceLog_Log(log, LOG_UDP, "x");
    IInstanceLog_Log(log, LOG_DTLS, "x");
    IInstanceLog_Log(log, LOG_DATA, "x");
    cr_assert_eq(c.count, 6);
    assert_line(c.lines[0], "a tls: x");
    assert_line(c.lines[1], "a tcp: x");
    assert_line(c.lines[2], "a lds: x");
    assert_line(c.lines[3], "a udp: x");
    assert_line(c.lines[4], "a dtls: x");
    assert_line(c.lines[5], "a data: x");

    IInstanceLog_Delete(log);
    capture_free(&c);
}

Test(log, timestamp_is_local_time_now)
{
    struct capture c = {0};
    IInstanceLog *log = make_log("t", LOG_UDP, &c);
    time_t before = time(NULL);
    IInstanceLog_Log(log, LOG_UDP, "tick");
    time_t after = time(NULL);
    cr_assert_eq(c.count, 1);

    int hh, mm, ss, ms;
    cr_assert_eq(sscanf(c.lines[0], "%2d:%2d:%2d.%3d", &hh, &mm, &ss, &ms), 4);
    cr_assert(hh < 24 && mm < 60 && ss < 61 && ms < 1000);
    int logged = hh * 3600 + mm * 60 + ss;
    bool match = false;
    for (time_t t = before; t <= after; t++) {
        struct tm tm;
        localtime_r(&t, &tm);
        if (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec == logged)
            match = true;
    }
    cr_assert(match, "timestamp '%.12s' is not the current local time", c.lines[0]);

    IInstanceLog_Delete(log);
    capture_free(&c);
}

Test(log, filters_by_flag)
{
    struct capture c = {0};
    IInstanceLog *log = make_log("app", LOG_TCP | LOG_UDP, &c);

    cr_assert(IInstanceLog_LogFlagSet(log, LOG_TCP));
    cr_assert(IInstanceLog_LogFlagSet(log, LOG_UDP));
    cr_assert_not(IInstanceLog_LogFlagSet(log, LOG_TLS));
    cr_assert_not(IInstanceLog_LogFlagSet(log, LOG_LDS));
    cr_assert_not(IInstanceLog_LogFlagSet(log, LOG_DTLS));
    cr_assert_not(IInstanceLog_LogFlagSet(log, (enum LogFlags)0));

    IInstanceLog_Log(log, LOG_TLS, "dropped");
    IInstanceLog_Log(log, LOG_DTLS, "dropped");
    IInstanceLog_Log(log, (enum LogFlags)0, "dropped");
    IInstanceLog_Log(log, LOG_UDP, "kept");
    cr_assert_eq(c.count, 1);
    assert_line(c.lines[0], "app udp: kept");

    IInstanceLog_Delete(log);
    capture_free(&c);
}

Test(log, no_flags_logs_nothing)
{
    struct capture c = {0};
    IInstanceLog *log = make_log("app", 0, &c);
    IInstanceLog_Log(log, LOG_TCP, "x");
    IInstanceLog_HexDump(log, LOG_TCP, "abc", 3);
    cr_assert_eq(c.count, 0);
    IInstanceLog_Delete(log);
}

Test(log, null_log_is_safe)
{
    cr_assert_not(IInstanceLog_LogFlagSet(NULL, LOG_TCP));
    IInstanceLog_Log(NULL, LOG_TCP, "nothing %d", 1);
    IInstanceLog_HexDump(NULL, LOG_TCP, "abc", 3);
    IInstanceLog_SetLogFlags(NULL, ALL_FLAGS);
    IInstanceLog_SetSink(NULL, capture_sink, NULL);
    IInstanceLog_SetSink(NULL, NULL, NULL);
    rs_log_error(NULL, LOG_TCP, "nothing %d", 2);
    IInstanceLog_Delete(NULL);
}

Test(log, null_and_empty_app_name)
{
    struct capture c = {0};
    IInstanceLog *log = make_log(NULL, LOG_TCP, &c);
    IInstanceLog_Log(log, LOG_TCP, "m");
    IInstanceLog_Delete(log);
    log = make_log("", LOG_TCP, &c);
    IInstanceLog_Log(log, LOG_TCP, "m");
    IInstanceLog_Delete(log);

    cr_assert_eq(c.count, 2);
    assert_line(c.lines[0], "tcp: m");
    assert_line(c.lines[1], "tcp: m");
    capture_free(&c);
}

Test(log, app_name_is_copied)
{
    struct capture c = {0};
    char name[] = "orig";
    IInstanceLog *log = make_log(name, LOG_LDS, &c);
    strcpy(name, "XXXX");
    IInstanceLog_Log(log, LOG_LDS, "m");
    cr_assert_eq(c.count, 1);
    assert_line(c.lines[0], "orig lds: m");
    IInstanceLog_Delete(log);
    capture_free(&c);
}

static uint64_t flags_with_env(const char *env, uint64_t base)
{
    setenv("RINGSOCK_LOG", env, 1);
    IInstanceLog *log = IInstanceLog_Create("env", base);
    unsetenv("RINGSOCK_LOG");
    cr_assert_not_null(log);
    uint64_t flags = 0;
    /* The flag set is opaque; probe it through the public API, bit by bit. */
    for (int bit = 0; bit < 64; bit++) {
        if (IInstanceLog_LogFlagSet(log, (enum LogFlags)(1ULL << bit)))
            flags |= 1ULL << bit;
    }
    IInstanceLog_Delete(log);
    return flags;
}

Test(log, env_list)
{
    cr_assert_eq(flags_with_env("tcp,tls", 0), (uint64_t)(LOG_TCP | LOG_TLS));
    cr_assert_eq(flags_with_env("TCP TLS", 0), (uint64_t)(LOG_TCP | LOG_TLS));
    cr_assert_eq(flags_with_env(" Udp , dtls,,", 0), (uint64_t)(LOG_UDP | LOG_DTLS));
    cr_assert_eq(flags_with_env("lds", 0), (uint64_t)LOG_LDS);
    cr_assert_eq(flags_with_env("local", 0), (uint64_t)LOG_LDS);
}

Test(log, env_all)
{
    cr_assert_eq(flags_with_env("all", 0), ALL_FLAGS);
    cr_assert_eq(flags_with_env("ALL", 0), ALL_FLAGS);
}

Test(log, env_numeric)
{
    cr_assert_eq(flags_with_env("0x800", 0), (uint64_t)LOG_TCP);
    cr_assert_eq(flags_with_env("0X400000", 0), (uint64_t)LOG_DTLS);
    cr_assert_eq(flags_with_env("2048", 0), (uint64_t)LOG_TCP);
    cr_assert_eq(flags_with_env("0x400,udp", 0), (uint64_t)(LOG_TLS | LOG_UDP));
}

/* LOG_DATA is an extension bit: one bit, none of the SDK's, not in "all". */
Test(log, env_data)
{
    cr_assert_eq((uint64_t)LOG_DATA & ALL_FLAGS, 0);
    cr_assert_eq((uint64_t)LOG_DATA & ((uint64_t)LOG_DATA - 1), 0, "one bit");
    cr_assert_eq(flags_with_env("tcp,data", 0), (uint64_t)(LOG_TCP | LOG_DATA));
    cr_assert_eq(flags_with_env("DATA udp", 0), (uint64_t)(LOG_UDP | LOG_DATA));
    cr_assert_eq(flags_with_env("data", 0), (uint64_t)LOG_DATA);
    cr_assert_eq(flags_with_env("all,data", 0), ALL_FLAGS | LOG_DATA);
    cr_assert_eq(flags_with_env("0x40000000", 0), (uint64_t)LOG_DATA);
}

/* The engine's traffic lines and dumps (rs_log_data) need the type's flag and LOG_DATA. */
Test(log, traffic_needs_type_flag_and_data)
{
    static const struct {
        uint64_t flags;
        size_t lines;
    } cases[] = {
        {LOG_TCP, 0}, {LOG_DATA, 0}, {LOG_UDP | LOG_DATA, 0}, {LOG_TCP | LOG_DATA, 2}, {0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct capture c = {0};
        IInstanceLog *log = make_log("hx", cases[i].flags, &c);
        cr_assert_eq(rs_log_data_on(log, LOG_TCP), cases[i].lines > 0);
        rs_log_data(log, LOG_TCP, "abc", 3, "tcp %d sent %d bytes", 1, 3);
        cr_assert_eq(c.count, cases[i].lines, "flags %#llx", (unsigned long long)cases[i].flags);
        if (cases[i].lines) {
            assert_line(c.lines[0], "hx tcp: tcp 1 sent 3 bytes");
            assert_line(c.lines[1], "hx tcp: 0000: 61 62 63"
                                    "                                       "
                                    "  abc");
        }
        IInstanceLog_Delete(log);
        capture_free(&c);
    }
    rs_log_data(NULL, LOG_TCP, "abc", 3, "nothing");
    cr_assert_not(rs_log_data_on(NULL, LOG_TCP));
}

/* What README shows: an application's own bit, outside the SDK's and LOG_DATA. */
Test(log, application_flag_of_its_own)
{
    const enum LogFlags billing = (enum LogFlags)0x10000000;
    cr_assert_eq((uint64_t)billing & (ALL_FLAGS | LOG_DATA), 0);
    struct capture c = {0};
    IInstanceLog *log = make_log("billing", LOG_TCP | billing, &c);
    IInstanceLog_Log(log, billing, "invoice %d sent", 7);
    IInstanceLog_SetLogFlags(log, LOG_TCP);
    IInstanceLog_Log(log, billing, "dropped");
    cr_assert_eq(c.count, 1);
    assert_line(c.lines[0], "billing log: invoice 7 sent");
    cr_assert_eq(flags_with_env("0x10000000", 0), (uint64_t)billing);
    IInstanceLog_Delete(log);
    capture_free(&c);
}

Test(log, env_unknown_names_ignored)
{
    cr_assert_eq(flags_with_env("bogus", 0), 0);
    cr_assert_eq(flags_with_env("bogus,tcp,tcpx,0xzz,-1", 0), (uint64_t)LOG_TCP);
    cr_assert_eq(flags_with_env("", 0), 0);
}

Test(log, env_adds_to_create_flags)
{
    cr_assert_eq(flags_with_env("tls", LOG_UDP), (uint64_t)(LOG_TLS | LOG_UDP));
    cr_assert_eq(flags_with_env("nothing", LOG_LDS), (uint64_t)LOG_LDS);
}

Test(log, env_read_at_each_create)
{
    cr_assert_eq(flags_with_env("tcp", 0), (uint64_t)LOG_TCP);
    cr_assert_eq(flags_with_env("udp", 0), (uint64_t)LOG_UDP);
    IInstanceLog *log = IInstanceLog_Create("env", 0);
    cr_assert_not(IInstanceLog_LogFlagSet(log, LOG_UDP));
    IInstanceLog_Delete(log);
}

Test(log, set_log_flags_replaces)
{
    setenv("RINGSOCK_LOG", "all", 1);
    struct capture c = {0};
    IInstanceLog *log = make_log("app", LOG_TCP, &c);
    cr_assert(IInstanceLog_LogFlagSet(log, LOG_TLS));

    IInstanceLog_SetLogFlags(log, LOG_UDP);
    cr_assert(IInstanceLog_LogFlagSet(log, LOG_UDP));
    cr_assert_not(IInstanceLog_LogFlagSet(log, LOG_TCP));
    cr_assert_not(IInstanceLog_LogFlagSet(log, LOG_TLS));
    IInstanceLog_Log(log, LOG_TCP, "dropped");
    IInstanceLog_Log(log, LOG_UDP, "kept");

    IInstanceLog_SetLogFlags(log, 0);
    IInstanceLog_Log(log, LOG_UDP, "dropped");

    cr_assert_eq(c.count, 1);
    assert_line(c.lines[0], "app udp: kept");
    IInstanceLog_Delete(log);
    capture_free(&c);
}

Test(log, hexdump_20_bytes)
{
    struct capture c = {0};
    IInstanceLog *log = make_log("hx", LOG_TCP, &c);

    const char data[] = "GET / HTTP/1.1\r\nHost";
    IInstanceLog_HexDump(log, LOG_TCP, data, 20);
    cr_assert_eq(c.count, 2);
    assert_line(c.lines[0],
                "hx tcp: 0000: 47 45 54 20 2f 20 48 54 54 50 2f 31 2e 31 0d 0a  GET / HTTP/1.1..");
    assert_line(c.lines[1], "hx tcp: 0010: 48 6f 73 74"
                            "                                    "
                            "  Host");

    IInstanceLog_Delete(log);
    capture_free(&c);
}

Test(log, hexdump_binary_and_exact_width)
{
    struct capture c = {0};
    IInstanceLog *log = make_log("hx", LOG_UDP, &c);

    unsigned char data[16];
    for (int i = 0; i < 16; i++)
        data[i] = (unsigned char)(0xf0 + i);
    data[3] = 0x7f;
    data[4] = ' ';
    data[5] = '~';
    IInstanceLog_HexDump(log, LOG_UDP, data, sizeof(data));
    cr_assert_eq(c.count, 1);
    assert_line(c.lines[0],
                "hx udp: 0000: f0 f1 f2 7f 20 7e f6 f7 f8 f9 fa fb fc fd fe ff  .... ~..........");

    IInstanceLog_Delete(log);
    capture_free(&c);
}

Test(log, hexdump_empty_or_filtered)
{
    struct capture c = {0};
    IInstanceLog *log = make_log("hx", LOG_TCP, &c);
    IInstanceLog_HexDump(log, LOG_TCP, "abc", 0);
    IInstanceLog_HexDump(log, LOG_TLS, "abc", 3);
    cr_assert_eq(c.count, 0);
    IInstanceLog_Delete(log);
}

Test(log, hexdump_offsets_count_up)
{
    struct capture c = {0};
    IInstanceLog *log = make_log("hx", LOG_TCP, &c);
    char data[16 * 20];
    memset(data, 'a', sizeof(data));
    IInstanceLog_HexDump(log, LOG_TCP, data, sizeof(data));
    cr_assert_eq(c.count, 20);
    assert_line(c.lines[19], "hx tcp: 0130: 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61  "
                             "aaaaaaaaaaaaaaaa");
    IInstanceLog_Delete(log);
    capture_free(&c);
}

Test(log, long_line_intact)
{
    struct capture c = {0};
    IInstanceLog *log = make_log("long", LOG_TLS, &c);

    char *msg = malloc(3001);
    for (int i = 0; i < 3000; i++)
        msg[i] = (char)('a' + i % 26);
    msg[3000] = '\0';
    IInstanceLog_Log(log, LOG_TLS, "%s|end", msg);

    cr_assert_eq(c.count, 1);
    char *want = malloc(3100);
    snprintf(want, 3100, "long tls: %s|end", msg);
    assert_line(c.lines[0], want);

    free(want);
    free(msg);
    IInstanceLog_Delete(log);
    capture_free(&c);
}

/* Exercise lengths either side of the stack buffer, where the malloc fallback kicks in. */
Test(log, lines_around_buffer_size)
{
    struct capture c = {0};
    IInstanceLog *log = make_log("b", LOG_TCP, &c);
    char msg[1200];
    char want[1300];

    for (size_t n = 980; n < 1040; n++) {
        memset(msg, 'x', n);
        msg[n] = '\0';
        msg[n - 1] = 'E';
        IInstanceLog_Log(log, LOG_TCP, "%s", msg);
        cr_assert_eq(c.count, 1);
        snprintf(want, sizeof(want), "b tcp: %s", msg);
        assert_line(c.lines[0], want);
        capture_free(&c);
    }
    IInstanceLog_Delete(log);
}

Test(log, long_app_name)
{
    struct capture c = {0};
    char app[1500];
    memset(app, 'n', sizeof(app) - 1);
    app[sizeof(app) - 1] = '\0';
    IInstanceLog *log = make_log(app, LOG_TCP, &c);
    IInstanceLog_Log(log, LOG_TCP, "short");
    cr_assert_eq(c.count, 1);
    char want[1600];
    snprintf(want, sizeof(want), "%s tcp: short", app);
    assert_line(c.lines[0], want);
    IInstanceLog_Delete(log);
    capture_free(&c);
}

Test(log, error_emitted_without_flag)
{
    struct capture c = {0};
    IInstanceLog *log = make_log("err", 0, &c);

    rs_log_error(log, LOG_TCP, "connect failed: %s", "refused");
    rs_log_error(log, (enum LogFlags)0, "generic %d", 7);
    IInstanceLog_Log(log, LOG_TCP, "dropped");
    cr_assert_eq(c.count, 2);
    assert_line(c.lines[0], "err tcp: connect failed: refused");
    assert_line(c.lines[1], "err log: generic 7");

    IInstanceLog_Delete(log);
    capture_free(&c);
}

/* Point fd 2 at a temporary file so the default sink's output can be read back. */
struct stderr_capture {
    FILE *file;
    int saved;
};

static void stderr_begin(struct stderr_capture *s)
{
    fflush(stderr);
    s->file = tmpfile();
    cr_assert_not_null(s->file);
    s->saved = dup(STDERR_FILENO);
    cr_assert_geq(s->saved, 0);
    cr_assert_geq(dup2(fileno(s->file), STDERR_FILENO), 0);
}

/* Returns the captured text (caller frees) and restores stderr. */
static char *stderr_end(struct stderr_capture *s)
{
    fflush(stderr);
    dup2(s->saved, STDERR_FILENO);
    close(s->saved);
    fseek(s->file, 0, SEEK_END);
    long size = ftell(s->file);
    cr_assert_geq(size, 0);
    char *text = calloc(1, (size_t)size + 1);
    rewind(s->file);
    cr_assert_eq(fread(text, 1, (size_t)size, s->file), (size_t)size);
    fclose(s->file);
    return text;
}

Test(log, default_sink_writes_line_to_stderr)
{
    IInstanceLog *log = IInstanceLog_Create("dflt", LOG_TCP);
    struct stderr_capture s;

    stderr_begin(&s);
    IInstanceLog_Log(log, LOG_TCP, "to stderr %d", 5);
    IInstanceLog_Log(log, LOG_TLS, "dropped");
    char *text = stderr_end(&s);

    size_t len = strlen(text);
    cr_assert_gt(len, 0);
    cr_assert_eq(text[len - 1], '\n');
    cr_assert_eq(strchr(text, '\n'), text + len - 1, "expected one line: '%s'", text);
    text[len - 1] = '\0';
    assert_line(text, "dflt tcp: to stderr 5");

    free(text);
    IInstanceLog_Delete(log);
}

Test(log, set_sink_null_restores_default)
{
    struct capture c = {0};
    IInstanceLog *log = make_log("rs", LOG_LDS, &c);
    IInstanceLog_Log(log, LOG_LDS, "to capture");
    IInstanceLog_SetSink(log, NULL, &c);

    struct stderr_capture s;
    stderr_begin(&s);
    IInstanceLog_Log(log, LOG_LDS, "to stderr");
    char *text = stderr_end(&s);

    cr_assert_eq(c.count, 1);
    assert_line(c.lines[0], "rs lds: to capture");
    size_t len = strlen(text);
    cr_assert_gt(len, 0);
    text[len - 1] = '\0';
    assert_line(text, "rs lds: to stderr");

    free(text);
    IInstanceLog_Delete(log);
    capture_free(&c);
}

#define THREADS          4
#define LINES_PER_THREAD 300

static void *log_thread(void *arg)
{
    IInstanceLog *log = arg;
    char pad[200];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (int i = 0; i < LINES_PER_THREAD; i++)
        IInstanceLog_Log(log, LOG_TCP, "line %d %s end", i, pad);
    return NULL;
}

Test(log, default_sink_lines_do_not_interleave)
{
    IInstanceLog *log = IInstanceLog_Create("mt", LOG_TCP);
    pthread_t th[THREADS];
    struct stderr_capture s;

    stderr_begin(&s);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, log_thread, log), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    char *text = stderr_end(&s);

    char pad[200];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    int lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int n = -1;
        cr_assert_gt(strlen(line), 13, "mangled line '%s'", line);
        cr_assert_eq(sscanf(line + 13, "mt tcp: line %d", &n), 1, "mangled line '%s'", line);
        char want[300];
        snprintf(want, sizeof(want), "mt tcp: line %d %s end", n, pad);
        assert_line(line, want);
        lines++;
    }
    cr_assert_eq(lines, THREADS * LINES_PER_THREAD);

    free(text);
    IInstanceLog_Delete(log);
}

/* A RINGSOCK_LOG token that is no flag is said on stderr, once per process (a program
 * makes many logs), and the rest of the list still counts. */
Test(log, env_unknown_name_said_once)
{
    struct stderr_capture s;
    stderr_begin(&s);
    uint64_t first = flags_with_env("tcp,bogus", 0);
    uint64_t second = flags_with_env("nonsense", 0);
    char *text = stderr_end(&s);
    cr_assert_eq(first, (uint64_t)LOG_TCP);
    cr_assert_eq(second, 0);
    const char *said = strstr(text, "RINGSOCK_LOG: \"bogus\" is not a log flag: ignored");
    cr_assert_not_null(said, "%s", text);
    cr_assert_null(strstr(strchr(said, '\n'), "is not a log flag"), "said twice: %s", text);
    free(text);
}
