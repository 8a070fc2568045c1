// Command coredns is a CoreDNS with only the plugins a cluster DNS needs,
// for the Kubernetes end-to-end tests (scripts/kube-bins.sh builds it into
// .cache/kube/bin; kube/kubetest writes its Corefile). It is built the way
// CoreDNS documents for custom builds: the directive list is set here, in
// CoreDNS's execution order, and each plugin is a blank import.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives are the plugins above in the order of CoreDNS's own
// core/dnsserver/zdirectives.go: a plugin sees a request before every
// plugin below it.
var directives = []string{
	"reload",
	"bind",
	"ready",
	"health",
	"errors",
	"log",
	"loadbalance",
	"cache",
	"kubernetes",
	"loop",
	"forward",
}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
