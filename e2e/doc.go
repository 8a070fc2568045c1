// Package e2e holds xvr's end-to-end tests: the real binaries (built once per
// run) in network namespaces with real veths, driven the way an operator or
// a container runtime drives them. It has no non-test code; nothing imports it.
//
// The tests need root, iproute2, iputils-ping and ethtool (make deps
// installs them); they skip only when not run as root.
package e2e
