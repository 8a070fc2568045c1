package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/vrouter/api"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	left = api.Network{Namespace: "default", Name: "vn-left-1", CIDR: "198.18.10.0/24", VNName: "k8s-vn-left-1-pod-network",
		Project: "k8s-default", VRF: 1, Gateway: "198.18.10.254", DNS: "198.18.10.253", CNIType: "xvr"}
	blue = api.Network{Namespace: "other", Name: "vn-blue", Ref: &api.NetworkRef{Domain: "default-domain", Project: "k8s-contrail", Name: "vn-blue"}}
	port = api.Port{ID: "3f2a9c/eth1", Network: "default/vn-left-1", HostIfName: "xvr3f2a9c1", IP: "198.18.10.3",
		MAC: "02:00:00:00:10:03", Vif: 4, State: "up"}
	route = api.Route{Network: "default/vn-left-1", Prefix: "198.18.40.0/24", NextHop: api.RouteNextHop{Type: "port", Port: port.ID}}
)

func fill(t *testing.T, s *Store) {
	t.Helper()
	for _, err := range []error{s.PutNetwork(left), s.PutNetwork(blue), s.PutPort(port), s.PutRoute(route),
		s.PutRoute(api.Route{Network: "other/vn-blue", Prefix: "198.18.30.0/24", NextHop: api.RouteNextHop{Type: "discard"}})} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func check(t *testing.T, s *Store) {
	t.Helper()
	nets, err := s.Networks()
	if err != nil || !reflect.DeepEqual(nets, []api.Network{left, blue}) {
		t.Errorf("networks = %+v, %v", nets, err)
	}
	ports, err := s.Ports()
	if err != nil || !reflect.DeepEqual(ports, []api.Port{port}) {
		t.Errorf("ports = %+v, %v", ports, err)
	}
	routes, err := s.Routes()
	if err != nil || len(routes) != 2 || !reflect.DeepEqual(routes[0], route) {
		t.Errorf("routes = %+v, %v", routes, err)
	}
}

func TestRoundTripAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lib", "xvr", "xvr.db")
	s := open(t, path)
	fill(t, s)
	fill(t, s) // idempotent
	check(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, %v", fi.Mode(), err)
	}
	s = open(t, path)
	defer s.Close()
	check(t, s)
}

func TestDelete(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "xvr.db"))
	defer s.Close()
	fill(t, s)
	for _, err := range []error{s.DeleteNetwork("other", "vn-blue"), s.DeletePort(port.ID),
		s.DeleteRoute("other/vn-blue", "198.18.30.0/24"), s.DeleteNetwork("no", "such"), s.DeletePort("no/such")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	nets, _ := s.Networks()
	ports, _ := s.Ports()
	routes, _ := s.Routes()
	if len(nets) != 1 || nets[0].Name != "vn-left-1" || len(ports) != 0 || len(routes) != 1 || !reflect.DeepEqual(routes[0], route) {
		t.Errorf("after delete: %+v %+v %+v", nets, ports, routes)
	}
}

func TestRejectsKeyless(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "xvr.db"))
	defer s.Close()
	if s.PutNetwork(api.Network{Name: "x"}) == nil || s.PutPort(api.Port{}) == nil ||
		s.PutRoute(api.Route{Network: "a/b"}) == nil || s.PutMeta("schema", nil) == nil {
		t.Error("keyless or reserved put accepted")
	}
}

func TestMetaAndSequence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xvr.db")
	s := open(t, path)
	if v, err := s.Meta("node-mac"); err != nil || v != nil {
		t.Errorf("missing meta = %q, %v", v, err)
	}
	if err := s.PutMeta("node-mac", []byte("02:00:00:00:00:01")); err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= 3; want++ {
		if n, err := s.NextSequence("vrf"); err != nil || n != want {
			t.Errorf("sequence = %d, %v; want %d", n, err, want)
		}
	}
	s.Close()
	s = open(t, path)
	defer s.Close()
	if v, err := s.Meta("node-mac"); err != nil || string(v) != "02:00:00:00:00:01" {
		t.Errorf("meta after reopen = %q, %v", v, err)
	}
	if n, err := s.NextSequence("vrf"); err != nil || n != 4 {
		t.Errorf("sequence after reopen = %d, %v; want 4", n, err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "xvr.db"))
	defer s.Close()
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				p := port
				p.ID = fmt.Sprintf("c%d/eth%d", w, i)
				errs <- s.PutPort(p)
				if i%5 == 0 {
					_, err := s.Ports()
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if ports, err := s.Ports(); err != nil || len(ports) != writers*each {
		t.Errorf("ports = %d, %v; want %d", len(ports), err, writers*each)
	}
}

func TestLockTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xvr.db")
	s := open(t, path)
	defer s.Close()
	start := time.Now()
	_, err := Open(path)
	took := time.Since(start)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if took < LockTimeout/2 || took > 5*LockTimeout {
		t.Errorf("second open failed after %v, want about %v", took, LockTimeout)
	}
	t.Logf("second open: %v after %v", err, took)
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xvr.db")
	s := open(t, path)
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("99")) })
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path); err == nil {
		t.Error("store with schema 99 opened")
	}
}

func TestCorruptValue(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "xvr.db"))
	defer s.Close()
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPorts).Put([]byte("x"), []byte("{")) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ports(); err == nil {
		t.Error("corrupt value listed without error")
	}
}

func TestPods(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xvrd.db")
	s := open(t, path)
	p := api.Pod{Namespace: "default", Name: "web", UID: "u1", Annotations: map[string]string{api.NetworksAnnotation: "a,b/c"}}
	if err := s.PutPod(p); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPod(api.Pod{Name: "x"}); err == nil {
		t.Fatal("pod without namespace stored")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	pods, err := s.Pods()
	if err != nil || len(pods) != 1 || pods[0].Annotations[api.NetworksAnnotation] != "a,b/c" || pods[0].UID != "u1" {
		t.Fatalf("pods after reopen: %+v %v", pods, err)
	}
	if err := s.DeletePod("default", "web"); err != nil {
		t.Fatal(err)
	}
	if pods, _ := s.Pods(); len(pods) != 0 {
		t.Fatalf("pod not deleted: %+v", pods)
	}
}

func TestPolicies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xvrd.db")
	s := open(t, path)
	if p, err := s.Policies(); err != nil || p.Enforce || len(p.Interfaces) != 0 {
		t.Fatalf("empty store: %+v, %v; want the zero Policies", p, err)
	}
	want := api.Policies{Enforce: true, Interfaces: []api.InterfacePolicy{{
		Pod: api.PodRef{Namespace: "x", Name: "a", UID: "u1"}, Network: "default/cluster-wide-default",
		Policy: policy.Set{Ingress: true, IngressRules: []policy.Rule{{Policy: "NetworkPolicy x/allow", AllPorts: true,
			Peers: []policy.Peer{{CIDR: "198.18.0.0/16", Except: []string{"198.18.1.0/24"}}}}}}}}}
	if err := s.PutPolicies(want); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPolicies(want); err != nil { // replaces, never adds
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	defer s.Close()
	got, err := s.Policies()
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: %+v, %v; want %+v", got, err, want)
	}
}
