/* Tests for IPaddr: parsing, IPv4-mapped storage, printing, truncation. */
#include <criterion/criterion.h>

#include <ringsock/ipaddr.h>

#include <string.h>

static const uint8_t zero16[16];

static void assert_round_trip(const char *text, const char *printed, bool v4)
{
    IPaddr a;
    char buf[64];

    cr_assert(IPaddr_FromString(&a, text), "'%s' should parse", text);
    cr_assert_eq(IPaddr_IsV4(&a), v4, "IsV4('%s')", text);
    IPaddr_ToString(&a, buf, sizeof(buf));
    cr_assert_str_eq(buf, printed, "'%s' printed as '%s'", text, buf);
}

static void assert_invalid(const char *text)
{
    IPaddr a;
    memset(&a, 0xa5, sizeof(a));
    cr_assert_not(IPaddr_FromString(&a, text), "'%s' should not parse", text ? text : "(null)");
    cr_assert_arr_eq(a.b, zero16, 16, "failed parse of '%s' must leave zeros",
                     text ? text : "(null)");
}

Test(ipaddr, v4_stored_mapped)
{
    IPaddr a;
    cr_assert(IPaddr_FromString(&a, "192.168.1.20"));
    const uint8_t want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 20};
    cr_assert_arr_eq(a.b, want, 16);
    cr_assert(IPaddr_IsV4(&a));
}

Test(ipaddr, v4_round_trip)
{
    assert_round_trip("1.2.3.4", "1.2.3.4", true);
    assert_round_trip("0.0.0.0", "0.0.0.0", true);
    assert_round_trip("255.255.255.255", "255.255.255.255", true);
    assert_round_trip("127.0.0.1", "127.0.0.1", true);
}

Test(ipaddr, v6_stored_as_is)
{
    IPaddr a;
    cr_assert(IPaddr_FromString(&a, "2001:db8::1"));
    const uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    cr_assert_arr_eq(a.b, want, 16);
    cr_assert_not(IPaddr_IsV4(&a));
}

Test(ipaddr, v6_round_trip)
{
    assert_round_trip("::1", "::1", false);
    assert_round_trip("::", "::", false);
    assert_round_trip("2001:db8::1", "2001:db8::1", false);
    assert_round_trip("fe80::1:2:3:4", "fe80::1:2:3:4", false);
    /* Printing is canonical (RFC 5952): lowercase, longest zero run compressed. */
    assert_round_trip("2001:DB8:0:0:0:0:0:FF", "2001:db8::ff", false);
    assert_round_trip("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", false);
}

Test(ipaddr, unspecified_is_all_zero)
{
    IPaddr a;
    cr_assert(IPaddr_FromString(&a, "::"));
    cr_assert_arr_eq(a.b, zero16, 16);
    cr_assert_not(IPaddr_IsV4(&a));

    IPaddr z;
    memset(&z, 0, sizeof(z));
    char buf[64];
    IPaddr_ToString(&z, buf, sizeof(buf));
    cr_assert_str_eq(buf, "::");
}

Test(ipaddr, mapped_text_is_v4)
{
    IPaddr a, b;
    assert_round_trip("::ffff:1.2.3.4", "1.2.3.4", true);
    cr_assert(IPaddr_FromString(&a, "::ffff:1.2.3.4"));
    cr_assert(IPaddr_FromString(&b, "1.2.3.4"));
    cr_assert_arr_eq(a.b, b.b, 16);
    assert_round_trip("::FFFF:10.0.0.1", "10.0.0.1", true);
}

Test(ipaddr, near_mapped_is_not_v4)
{
    /* Only ::ffff:0:0/96 is IPv4; the deprecated compatible form and neighbours are v6. */
    assert_round_trip("::1.2.3.4", "::1.2.3.4", false);
    assert_round_trip("::fffe:102:304", "::fffe:102:304", false);
    assert_round_trip("1::ffff:102:304", "1::ffff:102:304", false);
}

Test(ipaddr, invalid_inputs)
{
    assert_invalid("1.2.3");
    assert_invalid("256.1.1.1");
    assert_invalid("");
    assert_invalid("hello");
    assert_invalid("1.2.3.4:80");
    assert_invalid("1.2.3.4.5");
    assert_invalid(" 1.2.3.4");
    assert_invalid("1.2.3.4 ");
    assert_invalid("[::1]");
    assert_invalid("::1::2");
    assert_invalid("12345::");
    assert_invalid("1:2:3:4:5:6:7:8:9");
    assert_invalid(NULL);
}

Test(ipaddr, null_args)
{
    cr_assert_not(IPaddr_FromString(NULL, "1.2.3.4"));
    cr_assert_not(IPaddr_IsV4(NULL));
    char buf[8] = "junk";
    IPaddr_ToString(NULL, buf, sizeof(buf));
    cr_assert_str_eq(buf, "");
    IPaddr a;
    cr_assert(IPaddr_FromString(&a, "1.2.3.4"));
    IPaddr_ToString(&a, NULL, 16);
}

Test(ipaddr, small_buffer_truncates)
{
    IPaddr a;
    char buf[16];

    cr_assert(IPaddr_FromString(&a, "192.168.100.200"));
    memset(buf, 'Z', sizeof(buf));
    IPaddr_ToString(&a, buf, 8);
    cr_assert_str_eq(buf, "192.168");
    cr_assert_eq(buf[8], 'Z', "wrote past the given size");

    /* Exactly enough room, and one byte short of it. */
    IPaddr_ToString(&a, buf, 16);
    cr_assert_str_eq(buf, "192.168.100.200");
    IPaddr_ToString(&a, buf, 15);
    cr_assert_str_eq(buf, "192.168.100.20");

    cr_assert(IPaddr_FromString(&a, "2001:db8::1"));
    memset(buf, 'Z', sizeof(buf));
    IPaddr_ToString(&a, buf, 5);
    cr_assert_str_eq(buf, "2001");
    cr_assert_eq(buf[5], 'Z');

    IPaddr_ToString(&a, buf, 1);
    cr_assert_str_eq(buf, "");
}

Test(ipaddr, zero_size_writes_nothing)
{
    IPaddr a;
    char buf[4] = {'Q', 'Q', 'Q', 'Q'};
    cr_assert(IPaddr_FromString(&a, "1.2.3.4"));
    IPaddr_ToString(&a, buf, 0);
    cr_assert_eq(buf[0], 'Q');
}

Test(ipaddr, longest_v6_fits_46)
{
    IPaddr a;
    char buf[46];
    const char *text = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    cr_assert(IPaddr_FromString(&a, text));
    cr_assert_not(IPaddr_IsV4(&a));
    IPaddr_ToString(&a, buf, sizeof(buf));
    cr_assert_str_eq(buf, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
}
