package cni

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

// maxIfNameLen is IFNAMSIZ - 1.
const maxIfNameLen = 15

// Attachment is one pod interface to make: the default network's (Index 0)
// or one asked for by a selection element.
type Attachment struct {
	// Network is the network's key, "namespace/name".
	Network string
	// IfName is the interface name inside the pod.
	IfName string
	// Index orders the pod's interfaces; the default network's is 0.
	Index int
	// IP is a static address request; invalid (zero) asks xvrd's IPAM.
	IP netip.Addr
	// PrefixLen is the length given with IP ("ips": ["a.b.c.d/24"]), 0 if none;
	// it must then match the network's.
	PrefixLen int
	// MAC is a static MAC request; nil asks xvrd.
	MAC net.HardwareAddr
	// DefaultRoute marks the interface that gets the pod's default route.
	DefaultRoute bool
	// Gateway is the gateway the element's default-route asks for, if any;
	// it must be the network's gateway.
	Gateway netip.Addr
}

// ParseSelection parses the k8s.v1.cni.cncf.io/networks annotation in either
// form, a JSON list of selection elements or "name,ns/name@ifname", with the
// grammar of the network-attachment-definition-client's ParseNetworkAnnotation.
// A missing namespace becomes podNamespace. An empty annotation selects nothing.
func ParseSelection(annotation, podNamespace string) ([]*nadv1.NetworkSelectionElement, error) {
	s := strings.TrimSpace(annotation)
	if s == "" {
		return nil, nil
	}
	var elems []*nadv1.NetworkSelectionElement
	var err error
	if strings.ContainsAny(s, `[{"`) {
		elems, err = parseJSONSelection(s)
	} else {
		elems, err = parseTextSelection(s)
	}
	if err != nil {
		return nil, err
	}
	if err := checkNames(elems, podNamespace); err != nil {
		return nil, err
	}
	return elems, nil
}

func parseJSONSelection(s string) ([]*nadv1.NetworkSelectionElement, error) {
	var elems []*nadv1.NetworkSelectionElement
	if err := json.Unmarshal([]byte(s), &elems); err != nil {
		return nil, fmt.Errorf("networks annotation is not a JSON list of selection elements: %w", err)
	}
	for i, e := range elems {
		if e == nil {
			return nil, fmt.Errorf("networks annotation: element %d is null", i)
		}
	}
	return elems, nil
}

func parseTextSelection(s string) ([]*nadv1.NetworkSelectionElement, error) {
	var elems []*nadv1.NetworkSelectionElement
	for _, item := range strings.Split(s, ",") {
		e, err := parseTextElement(strings.TrimSpace(item))
		if err != nil {
			return nil, fmt.Errorf("networks annotation: %s: %w", echo(item), err)
		}
		elems = append(elems, e)
	}
	return elems, nil
}

// parseTextElement parses "[namespace/]name[@ifname]".
func parseTextElement(item string) (*nadv1.NetworkSelectionElement, error) {
	e := &nadv1.NetworkSelectionElement{}
	rest := item
	if ns, name, ok := strings.Cut(item, "/"); ok {
		e.Namespace, rest = strings.TrimSpace(ns), name
		if e.Namespace == "" {
			return nil, fmt.Errorf("empty namespace")
		}
	}
	name, ifname, hasIf := strings.Cut(rest, "@")
	e.Name, e.InterfaceRequest = strings.TrimSpace(name), strings.TrimSpace(ifname)
	if hasIf && e.InterfaceRequest == "" {
		return nil, fmt.Errorf("empty interface after '@'")
	}
	for _, part := range []string{e.Namespace, e.Name, e.InterfaceRequest} {
		if part != "" && !dnsLabel.MatchString(part) {
			return nil, fmt.Errorf("%s is not lower case alphanumerics and '-'", echo(part))
		}
	}
	return e, nil
}

// checkNames defaults the namespace and checks network names, which the JSON
// form does not constrain.
func checkNames(elems []*nadv1.NetworkSelectionElement, podNamespace string) error {
	for i, e := range elems {
		if e.Namespace == "" {
			e.Namespace = podNamespace
		}
		if !isDNSLabel(e.Namespace) {
			return fmt.Errorf("networks annotation: element %d: namespace %s is not a DNS-1123 label", i, echo(e.Namespace))
		}
		if !isDNSSubdomain(e.Name) {
			return fmt.Errorf("networks annotation: element %d: network name %s is not a DNS-1123 subdomain", i, echo(e.Name))
		}
	}
	return nil
}

// Plan turns the selection into the pod's interfaces: defaultNet as
// defaultIf (index 0) first, then one per element in order. An element
// without "interface" gets the lowest ethN (N >= 1) no other interface
// uses. The default route goes on defaultIf unless an element asks for it.
func Plan(defaultNet, defaultIf string, elems []*nadv1.NetworkSelectionElement) ([]Attachment, error) {
	taken, err := requestedNames(defaultIf, elems)
	if err != nil {
		return nil, err
	}
	atts := make([]Attachment, 0, len(elems)+1)
	atts = append(atts, Attachment{Network: defaultNet, IfName: defaultIf, DefaultRoute: true})
	next := 1
	for i, e := range elems {
		a, err := attachment(e, i+1)
		if err != nil {
			return nil, fmt.Errorf("networks annotation: element %d (%s/%s): %w", i, e.Namespace, e.Name, err)
		}
		if a.IfName == "" {
			a.IfName, next = freeName(taken, next)
		}
		atts = append(atts, a)
	}
	return atts, moveDefaultRoute(atts)
}

// requestedNames checks the interface names elements ask for: valid, unique,
// not the default interface's. It returns them (and defaultIf) as a set.
func requestedNames(defaultIf string, elems []*nadv1.NetworkSelectionElement) (map[string]bool, error) {
	taken := map[string]bool{defaultIf: true}
	for i, e := range elems {
		n := e.InterfaceRequest
		if n == "" {
			continue
		}
		if why := badIfName(n); why != "" {
			return nil, fmt.Errorf("networks annotation: element %d: interface %s: %s", i, echo(n), why)
		}
		if n == defaultIf {
			return nil, fmt.Errorf("networks annotation: element %d: interface %s is the default network's", i, echo(n))
		}
		if taken[n] {
			return nil, fmt.Errorf("networks annotation: element %d: duplicate interface name %s", i, echo(n))
		}
		taken[n] = true
	}
	return taken, nil
}

// freeName returns the lowest "ethN", N >= next, not in taken, marks it taken
// and returns the N to continue from.
func freeName(taken map[string]bool, next int) (string, int) {
	for ; ; next++ {
		n := "eth" + strconv.Itoa(next)
		if !taken[n] {
			taken[n] = true
			return n, next + 1
		}
	}
}

// badIfName says why Linux would refuse name as an interface name, or "".
func badIfName(name string) string {
	switch {
	case len(name) > maxIfNameLen:
		return fmt.Sprintf("longer than %d bytes", maxIfNameLen)
	case name == "." || name == "..":
		return "is . or .."
	case name == "lo":
		return "is the loopback's"
	}
	for _, r := range name {
		if r == '/' || r == ':' || r == '%' || unicode.IsSpace(r) || r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return "contains '/', ':', '%', whitespace or a non-printable character"
		}
	}
	return ""
}

func attachment(e *nadv1.NetworkSelectionElement, index int) (Attachment, error) {
	a := Attachment{Network: e.Namespace + "/" + e.Name, IfName: e.InterfaceRequest, Index: index}
	var err error
	if a.IP, a.PrefixLen, err = staticIP(e.IPRequest); err != nil {
		return a, err
	}
	if a.MAC, err = staticMAC(e.MacRequest); err != nil {
		return a, err
	}
	a.DefaultRoute, a.Gateway, err = defaultRoute(e.GatewayRequest)
	return a, err
}

// staticIP parses "ips": at most one IPv4 address, with or without a prefix length.
func staticIP(ips []string) (netip.Addr, int, error) {
	switch len(ips) {
	case 0:
		return netip.Addr{}, 0, nil
	case 1:
	default:
		return netip.Addr{}, 0, fmt.Errorf("ips %s: one address per interface", echo(fmt.Sprintf("%q", ips)))
	}
	s, plen := ips[0], 0
	if p, err := netip.ParsePrefix(s); err == nil {
		s, plen = p.Addr().String(), p.Bits()
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, 0, fmt.Errorf("ips %s: not an IPv4 address", echo(ips[0]))
	}
	if !ip.IsGlobalUnicast() {
		return netip.Addr{}, 0, fmt.Errorf("ips %s: not a unicast address", echo(ips[0]))
	}
	if plen == 0 && strings.Contains(ips[0], "/") {
		return netip.Addr{}, 0, fmt.Errorf("ips %s: prefix length 0", echo(ips[0]))
	}
	return ip, plen, nil
}

// staticMAC parses "mac": a unicast, non-zero Ethernet address.
func staticMAC(s string) (net.HardwareAddr, error) {
	if s == "" {
		return nil, nil
	}
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("mac %s: not an Ethernet MAC address", echo(s))
	}
	if mac[0]&1 != 0 {
		return nil, fmt.Errorf("mac %s: multicast, want unicast", echo(s))
	}
	if string(mac) == "\x00\x00\x00\x00\x00\x00" {
		return nil, fmt.Errorf("mac %s: all zeros", echo(s))
	}
	return mac, nil
}

// defaultRoute parses "default-route": one IPv4 gateway.
func defaultRoute(gws []net.IP) (bool, netip.Addr, error) {
	switch len(gws) {
	case 0:
		return false, netip.Addr{}, nil
	case 1:
	default:
		return false, netip.Addr{}, fmt.Errorf("default-route %s: one gateway per interface", echo(fmt.Sprint(gws)))
	}
	gw, ok := netip.AddrFromSlice(gws[0])
	if !ok || !gw.Unmap().Is4() {
		return false, netip.Addr{}, fmt.Errorf("default-route %v: not an IPv4 address", gws[0])
	}
	return true, gw.Unmap(), nil
}

// moveDefaultRoute takes the default route off atts[0] when an element asks
// for it, and refuses two such elements.
func moveDefaultRoute(atts []Attachment) error {
	var asked []string
	for _, a := range atts[1:] {
		if a.DefaultRoute {
			asked = append(asked, a.IfName)
		}
	}
	if len(asked) > 1 {
		return fmt.Errorf("networks annotation: default-route asked for on %d interfaces (%s), at most one",
			len(asked), strings.Join(asked, ", "))
	}
	atts[0].DefaultRoute = len(asked) == 0
	return nil
}
