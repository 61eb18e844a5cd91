#!/bin/sh
# The reference pages keep up with the headers:
# - every public function, function-like or aliasing macro and callback of
#   include/ringsock/*.h (and every class method of sdk/include/**/*.h, when that directory
#   exists) is named in a heading or a signature line (a declaration inside a fenced code
#   block) of a docs/*.md page other than api.md, which is the contract, not the reference;
# - docs/api.md equals ../shared/api.md (the contract's master copy) when that file exists
#   (DOCS_CHECK_SHARED_API names another copy);
# - every relative link in README.md and docs/*.md points to a file that exists (and an
#   #anchor into a Markdown page to one of its headings);
# - docs/index.md names every other docs/*.md page.
# Exit 1 naming each failure.
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)

status=0
shared=${DOCS_CHECK_SHARED_API:-$root/../shared/api.md}
if [ -f "$shared" ]; then
    if ! cmp -s docs/api.md "$shared"; then
        echo "docs_check: docs/api.md differs from $shared" >&2
        status=1
    fi
else
    echo "docs_check: no $shared, api.md not compared"
fi

sdk_headers=
if [ -d sdk/include ]; then
    sdk_headers=$(find sdk/include -name '*.h' | sort)
fi

perl - "$status" include/ringsock/*.h -- $sdk_headers <<'EOF' || exit 1
use strict;
use warnings;

my $status = shift @ARGV;
my (@c, @sdk, $list);
$list = \@c;
for (@ARGV) { if ($_ eq '--') { $list = \@sdk } else { push @$list, $_ } }

my %skip = map { $_ => 1 } qw(if while for return switch sizeof defined operator else case
    __attribute__ static_assert decltype alignof noexcept);

sub slurp { local $/; open my $f, '<', $_[0] or die "$_[0]: $!"; my $t = <$f>; close $f; $t }

# Names a header makes public: functions and methods declared at file, namespace,
# extern "C" or class scope (not inside function bodies), callbacks (function pointers in
# tables), and macros other than include guards.
sub public_names {
    my ($file) = @_;
    my $text = slurp($file);
    $text =~ s{/\*.*?\*/}{ my $c = $&; $c =~ s/[^\n]//g; $c }gse;
    $text =~ s{//[^\n]*}{}g;
    my (%names, @scope);
    my $pending = 'block';
    for my $line (split /\n/, $text) {
        if ($line =~ /^\s*#\s*define\s+(\w+)/) {
            my $n = $1;
            $names{$n} = $file unless $n =~ /_H_?$/ || $line =~ /^\s*#\s*define\s+\w+\s*$/;
            next;
        }
        next if $line =~ /^\s*#/;
        my $kind = @scope ? $scope[-1] : 'ns';
        if ($kind ne 'block') {
            $names{$1} = $file if $line =~ /^\s*(?:[\w]+[\s\*]+)+\(\s*\*\s*(\w+)\s*\)\s*\(/;
            if ($line =~ /^\s*(?:[\w:<>~]+[\s\*&]+)+(~?\w+)\s*\(/ && $line !~ /\(\s*\*/) {
                my $n = $1;
                my ($first) = $line =~ /^\s*(\w+)/;
                $names{$n} = $file unless $skip{$n} || $skip{$first // ''} || $n =~ /^~/
                    || $first eq 'typedef' || ($kind =~ /^class:(\w+)/ && $1 eq $n);
            }
        }
        # Scopes opened on this line: a class or struct body, a namespace or extern "C",
        # or anything else (function bodies, initialisers, enums).
        if ($line =~ /\b(?:class|struct)\s+(\w+)[^;(]*$/ || $line =~ /\b(?:class|struct)\s+(\w+)\s*[:{]/) {
            $pending = "class:$1";
        } elsif ($line =~ /\bnamespace\b|extern\s+"C"/) {
            $pending = 'ns';
        } elsif ($line =~ /\b(?:union|enum)\b/) {
            $pending = 'block';
        } elsif ($line =~ /\)\s*(?:const\s*)?(?:override\s*)?(?:\{|$)/) {
            $pending = 'block';
        }
        for my $ch (split //, $line) {
            if ($ch eq '{') { push @scope, $pending; $pending = 'block' }
            elsif ($ch eq '}') { pop @scope }
        }
        $pending = 'block' if $line =~ /;\s*$/;
    }
    return %names;
}

my %want;
for my $h (@c, @sdk) { my %n = public_names($h); @want{keys %n} = values %n }

# What the reference pages document: headings and declaration lines in code blocks.
my (@headings, @decls);
my @pages = grep { !/\/api\.md$/ } glob('docs/*.md');
for my $page (@pages) {
    my $fence = 0;
    for my $line (split /\n/, slurp($page)) {
        if ($line =~ /^\s*(```|~~~)/) { $fence = !$fence; next }
        if (!$fence) { push @headings, $line if $line =~ /^#{1,6}\s/; next }
        push @decls, $line;
    }
}
my $heads = join "\n", @headings;
my @missing;
for my $n (sort keys %want) {
    my $q = quotemeta $n;
    next if $heads =~ /(?<![\w])$q(?![\w])/;
    my $found = 0;
    for (@decls) {
        my ($first) = /^\s*(\w+)/;
        next if defined $first && $skip{$first};
        if (/\(\s*\*\s*$q\s*\)\s*\(/ || /^\s*#\s*define\s+$q\b/
            || /^\s*(?:[\w:<>]+[\s\*&]+)+$q\s*\(/ || /^\s*(?:[\w:<>]+::)$q\s*\(/) {
            $found = 1;
            last;
        }
    }
    push @missing, "$n ($want{$n})" unless $found;
}
for (@missing) { print STDERR "docs_check: no docs/*.md heading or signature line for $_\n" }
$status = 1 if @missing;

# Relative links in README.md and docs/*.md, and their #anchors into Markdown pages
# (GitHub's heading ids: lower case, punctuation dropped, spaces as hyphens).
my %anchors;
sub anchors_of {
    my ($page) = @_;
    return $anchors{$page} if $anchors{$page};
    my (%ids, %seen);
    my $fence = 0;
    for my $line (split /\n/, slurp($page)) {
        if ($line =~ /^\s*(```|~~~)/) { $fence = !$fence; next }
        next if $fence || $line !~ /^#{1,6}\s+(.*?)\s*#*\s*$/;
        (my $id = lc $1) =~ s/[^\w\- ]//g;
        $id =~ s/ /-/g;
        $ids{$seen{$id}++ ? "$id-" . ($seen{$id} - 1) : $id} = 1;
    }
    return $anchors{$page} = \%ids;
}
for my $page ('README.md', glob('docs/*.md')) {
    (my $dir = $page) =~ s{[^/]*$}{};
    my $fence = 0;
    my $n = 0;
    for my $line (split /\n/, slurp($page)) {
        $n++;
        if ($line =~ /^\s*(```|~~~)/) { $fence = !$fence; next }
        next if $fence;
        (my $plain = $line) =~ s/`[^`]*`//g;
        while ($plain =~ /\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g) {
            my $target = $1;
            next if $target =~ m{^[a-z][a-z0-9+.-]*:}i;
            my $frag = $target =~ s/#(.*)// ? $1 : undef;
            my $file = $target eq '' ? $page : "$dir$target";
            if (!-e $file) {
                print STDERR "docs_check: $page:$n links to $target, which does not exist\n";
                $status = 1;
            } elsif (defined $frag && $file =~ /\.md$/ && !anchors_of($file)->{$frag}) {
                print STDERR "docs_check: $page:$n links to $target#$frag, a heading $file does not have\n";
                $status = 1;
            }
        }
    }
}
# docs/index.md names every other page (a link to it, or its path).
my $index = slurp('docs/index.md');
for my $page (glob('docs/*.md')) {
    (my $name = $page) =~ s{^docs/}{};
    next if $name eq 'index.md' || $index =~ /\]\(\Q$name\E(?:#[^)]*)?\)|docs\/\Q$name\E/;
    print STDERR "docs_check: docs/index.md does not name $page\n";
    $status = 1;
}
printf "docs_check: %d names documented on %d pages, links checked\n", scalar(keys %want),
    scalar(@pages) unless $status;
exit $status;
EOF
