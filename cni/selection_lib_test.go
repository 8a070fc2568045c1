package cni

import (
	"reflect"
	"testing"

	nadutils "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/utils"
)

// FuzzSelectionMatchesLibrary checks ParseSelection against the
// network-attachment-definition-client's ParseNetworkAnnotation, the
// reference parser (linked into tests only: it drags client-go into a binary
// the runtime execs for every pod; docs/decisions/0004). Whatever ours
// accepts the library parses to the same elements; whatever the library
// refuses, ours refuses too. Ours refuses more (names, null elements).
func FuzzSelectionMatchesLibrary(f *testing.F) {
	for _, s := range []string{
		`vn-left-1`, `vn-left-1,other/vn-right-1`, `a@eth5, b/c@net1`, `[{"name":"a"},{"name":"b","namespace":"x"}]`,
		`[{"name":"a","interface":"eth9","ips":["198.18.10.7"],"mac":"02:00:00:00:00:07","default-route":["198.18.10.254"]}]`,
		`/a`, `a@`, `a/b/c`, `[{"name":"a"}`, `[null]`, ` a , b `, `A`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, annotation string) {
		ours, err := ParseSelection(annotation, "pods")
		if err != nil || len(ours) == 0 {
			return
		}
		lib, lerr := nadutils.ParseNetworkAnnotation(annotation, "pods")
		if lerr != nil {
			t.Fatalf("%q: ours accepted %d elements, the library refused: %v", annotation, len(ours), lerr)
		}
		if !reflect.DeepEqual(ours, lib) {
			t.Fatalf("%q: ours %+v, library %+v", annotation, ours[0], lib[0])
		}
	})
}
