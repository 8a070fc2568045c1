// Package store persists xvrd's desired state — networks, ports, static
// routes, pods and the node's network policy, as the api types — in one
// bbolt file, so that a restarted xvrd restores every pod's connectivity
// (and keeps enforcing its policy) without the CNI's or the API server's help.
//
// Importers: vrouter/agent (the only writer) and cmd/xvrd (Open/Close).
//
// Lifecycle traps: the file is locked while open, so a second xvrd on the
// same file fails in Open after LockTimeout instead of waiting forever;
// Close it on shutdown. Every Put and Delete is one fsync'd bbolt
// transaction: call them after the change is validated, not per packet.
// Values are the api types as JSON; the store checks only that the keys
// are present, not that the objects make sense.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/xvr-project/xvr/vrouter/api"
)

// LockTimeout is how long Open waits for another process's lock on the file.
const LockTimeout = time.Second

// schemaVersion is written to the meta bucket; Open refuses a newer file.
const schemaVersion = 1

var (
	bucketNetworks = []byte("networks")
	bucketPorts    = []byte("ports")
	bucketRoutes   = []byte("routes")
	bucketPods     = []byte("pods")
	bucketPolicies = []byte("policies")
	keyNode        = "node"
	bucketMeta     = []byte("meta")
	keySchema      = []byte("schema")
)

// ErrLocked is returned by Open when another process holds the file.
var ErrLocked = errors.New("store is locked by another process")

// Store is xvrd's persistent state. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens or creates the store at path, creating its directory (0700)
// and file (0600) if needed.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating store directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: LockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("opening %s: %w (is another xvrd running?)", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	if err := db.Update(initBuckets); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// initBuckets creates the buckets and checks the schema version.
func initBuckets(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketNetworks, bucketPorts, bucketRoutes, bucketPods, bucketPolicies, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("creating bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	v := meta.Get(keySchema)
	if v == nil {
		return meta.Put(keySchema, []byte(strconv.Itoa(schemaVersion)))
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n > schemaVersion {
		return fmt.Errorf("schema version %q is newer than this xvrd's %d", v, schemaVersion)
	}
	return nil
}

// Close closes the file and releases its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing store: %w", err)
	}
	return nil
}

// Path is the store's file.
func (s *Store) Path() string { return s.db.Path() }

// PutNetwork stores n under its key, namespace/name, replacing any previous value.
func (s *Store) PutNetwork(n api.Network) error {
	if n.Namespace == "" || n.Name == "" {
		return errors.New("store: network without namespace or name")
	}
	return s.put(bucketNetworks, n.Key(), n)
}

// DeleteNetwork removes a network; removing a missing one is not an error.
func (s *Store) DeleteNetwork(namespace, name string) error {
	return s.delete(bucketNetworks, namespace+"/"+name)
}

// Networks returns every stored network, ordered by key.
func (s *Store) Networks() ([]api.Network, error) { return list[api.Network](s, bucketNetworks) }

// PutPort stores p under its ID, replacing any previous value.
func (s *Store) PutPort(p api.Port) error {
	if p.ID == "" {
		return errors.New("store: port without id")
	}
	return s.put(bucketPorts, p.ID, p)
}

// DeletePort removes a port; removing a missing one is not an error.
func (s *Store) DeletePort(id string) error { return s.delete(bucketPorts, id) }

// Ports returns every stored port, ordered by ID.
func (s *Store) Ports() ([]api.Port, error) { return list[api.Port](s, bucketPorts) }

// PutRoute stores r under its network and prefix, replacing any previous value.
func (s *Store) PutRoute(r api.Route) error {
	if r.Network == "" || r.Prefix == "" {
		return errors.New("store: route without network or prefix")
	}
	return s.put(bucketRoutes, routeKey(r.Network, r.Prefix), r)
}

// DeleteRoute removes a route; removing a missing one is not an error.
func (s *Store) DeleteRoute(network, prefix string) error {
	return s.delete(bucketRoutes, routeKey(network, prefix))
}

// Routes returns every stored route, ordered by network then prefix (as strings).
func (s *Store) Routes() ([]api.Route, error) { return list[api.Route](s, bucketRoutes) }

// PutPod stores p under namespace/name, replacing any previous value.
func (s *Store) PutPod(p api.Pod) error {
	if p.Namespace == "" || p.Name == "" {
		return errors.New("store: pod without namespace or name")
	}
	return s.put(bucketPods, p.Key(), p)
}

// DeletePod removes a pod; removing a missing one is not an error.
func (s *Store) DeletePod(namespace, name string) error {
	return s.delete(bucketPods, namespace+"/"+name)
}

// Pods returns every stored pod, ordered by key.
func (s *Store) Pods() ([]api.Pod, error) { return list[api.Pod](s, bucketPods) }

// PutPolicies stores the node's network policy, replacing the one stored.
func (s *Store) PutPolicies(p api.Policies) error { return s.put(bucketPolicies, keyNode, p) }

// Policies returns the stored network policy; the zero Policies (not
// enforcing) if none was ever stored.
func (s *Store) Policies() (api.Policies, error) {
	l, err := list[api.Policies](s, bucketPolicies)
	if err != nil || len(l) == 0 {
		return api.Policies{}, err
	}
	return l[0], nil
}

// routeKey joins network and prefix with '|', which neither may contain.
func routeKey(network, prefix string) string { return network + "|" + prefix }

// Meta returns the value stored under key in the meta bucket, nil if none.
func (s *Store) Meta(key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte(key)); v != nil {
			out = append([]byte{}, v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading meta %s: %w", key, err)
	}
	return out, nil
}

// PutMeta stores a small value under key in the meta bucket. The key
// "schema" is the store's own.
func (s *Store) PutMeta(key string, value []byte) error {
	if key == "" || key == string(keySchema) {
		return fmt.Errorf("store: meta key %q is reserved", key)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("writing meta %s: %w", key, err)
	}
	return nil
}

// NextSequence returns the next value (1, 2, ...) of a named counter kept
// in the meta bucket, durably: a value is never returned twice.
func (s *Store) NextSequence(name string) (uint64, error) {
	var n uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketMeta).CreateBucketIfNotExists([]byte("seq:" + name))
		if err != nil {
			return err
		}
		n, err = b.NextSequence()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("advancing sequence %s: %w", name, err)
	}
	return n, nil
}

func (s *Store) put(bucket []byte, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s %s: %w", bucket, key, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(key), data)
	})
	if err != nil {
		return fmt.Errorf("storing %s %s: %w", bucket, key, err)
	}
	return nil
}

func (s *Store) delete(bucket []byte, key string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("deleting %s %s: %w", bucket, key, err)
	}
	return nil
}

// list decodes every value of bucket in key order.
func list[T any](s *Store, bucket []byte) ([]T, error) {
	var out []T
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var t T
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decoding %s %s: %w", bucket, k, err)
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", bucket, err)
	}
	return out, nil
}
