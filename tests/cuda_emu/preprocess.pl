#!/usr/bin/env perl
# preprocess.pl IN OUT: the mechanical pre-pass that lets g++ compile a CUDA source of
# kernels/ against the emulation headers (tests/cuda_emu/include). It rewrites exactly three
# constructs and keeps every line where it was (a #line directive points diagnostics and
# sanitizer reports at IN):
#   K<<<grid, block[, shmem[, stream]]>>>(args)   ->  emu_launch("K", K, grid, block...)(args)
#   extern __shared__ [__align__(n)] T name[];     ->  T *name = (T *)emu_dynamic_shared();
#   __shared__ T a[..], b[..];                     ->  static T a[..], b[..]; EMU_SHARED(a); ...
# and drops `#pragma unroll` (g++ warns on it). Comments and string literals are left alone.
# Deliberately not a CUDA parser: a construct it does not recognise stays as it is and
# fails to compile, which is the signal to extend this file.
use strict;
use warnings;

my ($in, $out) = @ARGV;
die "usage: preprocess.pl IN OUT\n" unless defined $out;
open my $fh, '<', $in or die "preprocess.pl: $in: $!\n";
my $s = do { local $/; <$fh> };
close $fh;

# Park comments and string/char literals so the rewrites only see code.
my @parked;
$s =~ s{(/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')}
       {push @parked, $1; "\x01" . $#parked . "\x02"}gse;

# Kernel launches; the name may be qualified and carry template arguments.
$s =~ s{((?:[A-Za-z_]\w*::)*[A-Za-z_]\w*(?:\s*<[^<>;()]*>)?)\s*<<<(.*?)>>>}
       {my ($k, $cfg) = ($1, $2); (my $name = $k) =~ s/\s+//g; "emu_launch(\"$name\", $k, $cfg)"}gse;

# Dynamic shared memory.
$s =~ s{extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?([A-Za-z_][\w\s:]*?)\s*(?:__align__\s*\(\s*\d+\s*\)\s*)?\b([A-Za-z_]\w*)\s*\[\s*\]\s*;}
       {$1 *$2 = ($1 *)emu_dynamic_shared();}g;

# Static shared memory: register every declarator so each block starts with garbage in it.
$s =~ s{\b__shared__\s+([^;{}]*);}{shared_decl($1)}ge;
sub shared_decl {
    my ($decl) = @_;
    my @names;
    my $depth = 0;
    my $piece = '';
    for my $ch (split //, $decl . ',') {
        $depth++ if $ch eq '[' || $ch eq '(';
        $depth-- if $ch eq ']' || $ch eq ')';
        if ($ch eq ',' && $depth == 0) {
            (my $p = $piece) =~ s/(\[[^\]]*\]\s*)+$//;    # drop array dimensions
            $p =~ s/\s*=.*$//s;                            # and an initialiser
            $p =~ /([A-Za-z_]\w*)\s*$/ or die "preprocess.pl: $in: cannot parse __shared__ $decl\n";
            push @names, $1;
            $piece = '';
        } else {
            $piece .= $ch;
        }
    }
    return "static $decl;" . join('', map { " EMU_SHARED($_);" } @names);
}

$s =~ s{^[ \t]*#[ \t]*pragma[ \t]+unroll\b[^\n]*}{}gm;

$s =~ s{\x01(\d+)\x02}{$parked[$1]}g;
open my $oh, '>', "$out.tmp" or die "preprocess.pl: $out: $!\n";
print $oh "#line 1 \"$in\"\n", $s;
close $oh or die "preprocess.pl: $out: $!\n";
rename "$out.tmp", $out or die "preprocess.pl: $out: $!\n";
