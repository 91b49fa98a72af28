#!/usr/bin/perl
# Verify the DKIM signatures of one message with Perl's Mail::DKIM (Debian's
# libmail-dkim-perl): a second, independent implementation of RFC 6376, as a
# receiving server runs it. Used by tests/test_deliverability.py.
#
# Usage: perl tests/dkim_verify.pl KEYS.txt < message.eml
#
# KEYS.txt answers the verifier's key look-ups instead of DNS: one record a line,
# "selector._domainkey.domain<TAB>v=DKIM1; k=rsa; p=...". A name it does not hold
# answers "no such record", as DNS would; nothing ever goes to the network.
#
# Prints one JSON object: {"result": ..., "detail": ..., "signatures": [{"domain",
# "selector", "result", "detail", "headers": [h= names, lower case], "canonicalization",
# "algorithm"}]}. Exit 0 whatever the result: the caller judges it.
use strict;
use warnings;

use JSON::PP ();
use Mail::DKIM::DNS ();
use Mail::DKIM::Verifier ();
use Net::DNS::RR ();

my $keys_file = shift @ARGV or die "usage: $0 KEYS.txt < message.eml\n";
my %records;
open( my $keys, '<', $keys_file ) or die "cannot read $keys_file: $!\n";
while ( my $line = <$keys> ) {
    chomp $line;
    next if $line =~ /^\s*(#|$)/;
    my ( $name, $txt ) = split /\t/, $line, 2;
    defined $txt or die "$keys_file: a line is not NAME<TAB>RECORD\n";
    $records{ lc $name } = $txt;
}
close $keys;

{
    # The one seam: Mail::DKIM::PublicKey asks Mail::DKIM::DNS::query for TXT records.
    no warnings 'redefine';
    *Mail::DKIM::DNS::query = sub {
        my ( $name, $type ) = @_;
        my $txt = $records{ lc $name };
        return () unless defined $txt && $type eq 'TXT';
        my @strings = unpack '(A255)*', $txt;    # DNS character-strings hold 255 bytes
        return ( Net::DNS::RR->new( name => $name, type => 'TXT', txtdata => \@strings ) );
    };
}

binmode STDIN;
my $verifier = Mail::DKIM::Verifier->new();
while ( my $line = <STDIN> ) {
    $line =~ s/\r?\n\z/\015\012/;    # the verifier wants CRLF line ends
    $verifier->PRINT($line);
}
$verifier->CLOSE();

my @signatures;
foreach my $signature ( $verifier->signatures ) {
    push @signatures, {
        domain           => $signature->domain,
        selector         => $signature->selector,
        result           => scalar $signature->result,
        detail           => scalar $signature->result_detail,
        headers          => [ map { lc } split /\s*:\s*/, ( $signature->headerlist // '' ) ],
        canonicalization => scalar $signature->canonicalization,
        algorithm        => $signature->algorithm,
    };
}
print JSON::PP->new->canonical->encode(
    {
        result     => scalar $verifier->result,
        detail     => scalar $verifier->result_detail,
        signatures => \@signatures,
    }
), "\n";
