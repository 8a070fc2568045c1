package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/xvr-project/xvr/vrouter/api"
)

// podManifest is the part of a Pod manifest xvrd keeps.
type podManifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		UID         string            `json:"uid"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

// readPods parses Pod manifests (YAML or JSON, several documents) from file.
func (c *cli) readPods(file string) ([]api.Pod, error) {
	if file == "" {
		return nil, errors.New("-f FILE is required")
	}
	var r io.Reader = c.stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	dec := yaml.NewYAMLOrJSONDecoder(r, 4096)
	var pods []api.Pod
	for i := 1; ; i++ {
		var m podManifest
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if m.Kind == "" && m.Metadata.Name == "" {
			continue // empty document
		}
		if m.Kind != "Pod" || m.Metadata.Name == "" {
			return nil, fmt.Errorf("%s: document %d: want kind Pod with metadata.name, got kind %q name %q", file, i, m.Kind, m.Metadata.Name)
		}
		pods = append(pods, api.Pod{Namespace: or(m.Metadata.Namespace, "default"), Name: m.Metadata.Name,
			UID: m.Metadata.UID, Annotations: m.Metadata.Annotations})
	}
	return pods, nil
}

// podApply registers pods from their manifests: the CNI then reads their
// k8s.v1.cni.cncf.io/networks annotation from xvrd.
func (c *cli) podApply(args []string) error {
	fs := c.flags("pod apply")
	file := fs.String("f", "", "Pod manifest (YAML or JSON), - for stdin")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	pods, err := c.readPods(*file)
	if err != nil {
		return err
	}
	cl, ctx, cancel := c.client()
	defer cancel()
	for _, p := range pods {
		if _, err := cl.ApplyPod(ctx, p); err != nil {
			return fmt.Errorf("pod %s: %w", p.Key(), err)
		}
		fmt.Fprintf(c.stdout, "pod %s configured\n", p.Key())
	}
	return nil
}

func (c *cli) podList(args []string) error {
	return show(c, "pod list", args, (*api.Client).ListPods, podTable)
}

func (c *cli) podGet(args []string) error {
	return c.withName("pod get", args, func(ns, name string) error {
		cl, ctx, cancel := c.client()
		defer cancel()
		p, err := cl.GetPod(ctx, ns, name)
		if err != nil {
			return err
		}
		return c.print(p, func(t *table) { podTable(t, []api.Pod{p}) })
	})
}

// podStatus prints the pod's network-status: one entry per interface.
func (c *cli) podStatus(args []string) error {
	return c.withName("pod status", args, func(ns, name string) error {
		cl, ctx, cancel := c.client()
		defer cancel()
		st, err := cl.PodNetworkStatus(ctx, ns, name)
		if err != nil {
			return err
		}
		return c.print(st, func(t *table) {
			t.row("INTERFACE", "NETWORK", "IPS", "MAC", "DEFAULT")
			for _, s := range st {
				t.row(s.Interface, s.Name, strings.Join(s.IPs, ","), s.Mac, s.Default)
			}
		})
	})
}

func (c *cli) podDelete(args []string) error {
	fs := c.flags("pod delete")
	ignore := fs.Bool("ignore-not-found", false, "treat a missing pod as deleted")
	rest, err := c.parse(fs, args, 1)
	if err != nil {
		return err
	}
	ns, name, err := splitNetwork(rest[0])
	if err != nil {
		return err
	}
	cl, ctx, cancel := c.client()
	defer cancel()
	if err := cl.DeletePod(ctx, ns, name); err != nil && !(*ignore && api.IsNotFound(err)) {
		return err
	}
	fmt.Fprintf(c.stdout, "pod %s/%s deleted\n", ns, name)
	return nil
}

// withName parses one NAMESPACE/NAME argument and runs fn with it.
func (c *cli) withName(name string, args []string, fn func(ns, name string) error) error {
	fs := c.flags(name)
	rest, err := c.parse(fs, args, 1)
	if err != nil {
		return err
	}
	ns, n, err := splitNetwork(rest[0])
	if err != nil {
		return err
	}
	return fn(ns, n)
}

func podTable(t *table, pods []api.Pod) {
	t.row("NAMESPACE", "NAME", "UID", "NETWORKS")
	for _, p := range pods {
		t.row(p.Namespace, p.Name, p.UID, p.Annotations[api.NetworksAnnotation])
	}
}
