package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"
)

// ErrPrivateAddress: the URL names, or its host resolves to, a private, loopback,
// link-local, unspecified or multicast address, and such addresses are not allowed.
var ErrPrivateAddress = errors.New("address is private, loopback or link-local")

// checkURL validates a subscription's URL: http or https, a host, no user info; an IP
// literal must be public unless allowPrivate. Host names are checked when connecting (see
// dialControl), so a name that resolves to a private address later is refused too.
func checkURL(raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return invalid("url", "%q is not a URL", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		return invalid("url", "%q: only http and https URLs are allowed", raw)
	case u.Host == "" || u.Hostname() == "":
		return invalid("url", "%q has no host", raw)
	case u.User != nil:
		return invalid("url", "%q: user info is not allowed in the URL", raw)
	case len(raw) > 2000:
		return invalid("url", "is longer than 2000 characters")
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !allowPrivate && private(ip) {
		return invalid("url", "%q: %v (set CRM_WEBHOOK_ALLOW_PRIVATE=true to allow it)", raw, ErrPrivateAddress)
	}
	return nil
}

// Prefixes refused besides those of the netip predicates, and those whose addresses embed an
// IPv4 address that a translator or relay on the way connects to.
var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")     // "this host on this network"
	sharedNAT   = netip.MustParsePrefix("100.64.0.0/10") // carrier-grade NAT, as private as the others
	nat64       = netip.MustParsePrefix("64:ff9b::/96")  // NAT64, well-known: the IPv4 address in the last 32 bits
	nat64Local  = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour   = netip.MustParsePrefix("2002::/16") // 6to4: the IPv4 address in bits 16 to 47
)

// private tells whether ip is an address a webhook may not reach: private, loopback,
// link-local, unspecified ("this network"), multicast or carrier-grade NAT, also when it is
// embedded in an IPv4-mapped, NAT64 or 6to4 IPv6 address; a local-use NAT64 address
// (64:ff9b:1::/48) is private whatever it embeds.
func private(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip):
			return private(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(ip):
			return private(netip.AddrFrom4([4]byte(b[2:6])))
		case nat64Local.Contains(ip):
			return true
		}
	}
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() ||
		thisNetwork.Contains(ip) || sharedNAT.Contains(ip)
}

// dialer connects only to public addresses unless allowPrivate: the check runs on the
// address actually dialled, after name resolution.
func dialer(allowPrivate bool) *net.Dialer {
	d := &net.Dialer{}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			if private(ip) {
				return fmt.Errorf("dial %s: %w", address, ErrPrivateAddress)
			}
			return nil
		}
	}
	return d
}

// dialContext is the dialer's DialContext, for an http.Transport.
func dialContext(allowPrivate bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialer(allowPrivate).DialContext
}
