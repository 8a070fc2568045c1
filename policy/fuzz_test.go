package policy

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzCompile: any JSON that decodes to a Set compiles without panicking,
// fails exactly when Validate fails (with ErrInvalid), and a compiled Set
// decides every edge packet as the reference does.
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"ingress":true}`,
		`{"ingress":true,"egress":true,"ingressRules":[{"policy":"NetworkPolicy x/a","peers":[{"cidr":"198.18.0.0/16","except":["198.18.1.0/24"]}],"ports":[{"protocol":"TCP","port":80,"endPort":90}]}]}`,
		`{"egress":true,"egressRules":[{"allPeers":true,"ports":[{"protocol":"UDP","port":53}]},{"peers":[{"cidr":"0.0.0.0/0"}],"allPorts":true}]}`,
		`{"ingress":true,"ingressRules":[{"peers":[{"cidr":"198.18.0.5/32"},{"cidr":"255.255.255.255/32"}],"ports":[{"protocol":"SCTP"},{"port":65535}]}]}`,
		`{"ingress":true,"ingressRules":[{"peers":[{"cidr":"2001:db8::/32"}]}]}`,
		`{"ingress":true,"ingressRules":[{"peers":[{"cidr":"198.18.0.0/24","except":["198.19.0.0/24"]}]}]}`,
		`{"egress":true,"egressRules":[{"allPeers":true,"ports":[{"protocol":"TCP","port":9,"endPort":8}]}]}`,
		`{"egress":true,"egressRules":[{"allPeers":true,"ports":[{"protocol":"ICMP"}]}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Set
		if json.Unmarshal(data, &s) != nil {
			return
		}
		verr := s.Validate()
		c, err := Compile(&s)
		if (err != nil) != (verr != nil) {
			t.Fatalf("Compile error %v, Validate error %v", err, verr)
		}
		if err != nil {
			if c != nil || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Compile = %v, %v: want nil and ErrInvalid", c, err)
			}
			return
		}
		ref, err := refCompile(&s)
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		addrs, ports := edgeAddrs(&s), edgePorts(&s)
		if len(addrs) > 400 {
			addrs = addrs[:400]
		}
		addrs = append(addrs, [4]byte{}, [4]byte{255, 255, 255, 255}, [4]byte{198, 18, 0, 1})
		if len(ports) > 40 {
			ports = ports[:40]
		}
		for _, d := range []Direction{Ingress, Egress} {
			for _, a := range addrs {
				for _, proto := range packetProtos {
					for _, port := range ports {
						if got, want := c.Check(d, a, proto, port), ref.Check(d, a, proto, port); got != want {
							t.Fatalf("Check(%v, %v, %d, %d) = %d, reference %d", d, a, proto, port, got, want)
						}
					}
				}
			}
		}
	})
}
