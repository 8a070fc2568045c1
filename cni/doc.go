// Package cni is the logic of xvr-cni, the CNI plugin ("type": "xvr", also
// installed as "contrail-k8s-cni") that gives a pod all of its interfaces in
// one ADD: eth0 on the cluster default network and one interface per network
// named in the pod's k8s.v1.cni.cncf.io/networks annotation, each a veth whose
// host end xvrd opens with AF_XDP. It talks to xvrd through vrouter/api.
//
// Importers: cmd/xvr-cni only (Funcs is what skel.PluginMainFuncs runs); the
// parsers (ParseConfig, ParseArgs, ParseSelection, Plan) have no side effects
// and may be used by tests and tools.
//
// Lifecycle traps: the plugin is a short-lived process run by the container
// runtime, possibly many at once for different pods. Work inside the pod's
// network namespace happens on a locked OS thread (inNS) and must not start
// goroutines, which would not inherit the namespace. ADD rolls back every
// veth and port it made when it fails; DEL works from xvrd's ports and the
// host veths' aliases, so it needs no netns and touches only its own sandbox.
package cni
