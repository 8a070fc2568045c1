package crds

import (
	"context"
	"errors"
	"fmt"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// EstablishTimeout bounds how long Ensure waits for the API server to serve
// the CRDs when ctx has no earlier deadline.
const EstablishTimeout = time.Minute

// Ensure installs the CRDs: it creates each one that is absent, updates
// xvr's own when their spec differs from this package's (an upgrade),
// never touches an existing upstream CRD (NAD, MultiNetworkPolicy: another
// CNI or policy implementation may own it), and waits
// until the API server reports each one Established. c needs a scheme
// that knows apiextensions.k8s.io/v1.
func Ensure(ctx context.Context, c client.Client) error {
	for _, want := range All() {
		// Two replicas starting at once may race on an update.
		err := retry.RetryOnConflict(retry.DefaultBackoff, func() error { return ensureOne(ctx, c, want) })
		if err != nil {
			return err
		}
	}
	for _, want := range All() {
		if err := waitEstablished(ctx, c, want.Name); err != nil {
			return err
		}
	}
	return nil
}

// ensureOne creates want if absent and brings one of xvr's CRDs up to date.
func ensureOne(ctx context.Context, c client.Client, want *apiextensionsv1.CustomResourceDefinition) error {
	var have apiextensionsv1.CustomResourceDefinition
	err := c.Get(ctx, client.ObjectKeyFromObject(want), &have)
	switch {
	case apierrors.IsNotFound(err):
		return create(ctx, c, want)
	case err != nil:
		return fmt.Errorf("crds: reading %s: %w", want.Name, err)
	case Upstream(want.Name) || equality.Semantic.DeepEqual(have.Spec, want.Spec):
		return nil
	}
	have.Spec = want.Spec
	if err := c.Update(ctx, &have); err != nil {
		return fmt.Errorf("crds: updating %s: %w", want.Name, err)
	}
	return nil
}

func create(ctx context.Context, c client.Client, want *apiextensionsv1.CustomResourceDefinition) error {
	err := c.Create(ctx, want.DeepCopy())
	if apierrors.IsAlreadyExists(err) {
		// Another replica (or an operator) was first; the next start
		// updates it if it differs.
		return nil
	}
	if err != nil {
		return fmt.Errorf("crds: creating %s: %w", want.Name, err)
	}
	return nil
}

// errNotEstablished is the state of a CRD the API server does not serve yet.
var errNotEstablished = errors.New("not established yet")

// waitEstablished polls the CRD until its Established condition is True.
// A CRD whose names conflict with another's fails at once.
func waitEstablished(ctx context.Context, c client.Client, name string) error {
	last := errNotEstablished
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, EstablishTimeout, true, func(ctx context.Context) (bool, error) {
		var have apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &have); err != nil {
			last = err
			return false, nil
		}
		established, err := isEstablished(&have)
		return established, err
	})
	if err != nil {
		return fmt.Errorf("crds: waiting for %s to be established: %w (last: %w)", name, err, last)
	}
	return nil
}

// isEstablished reports whether the API server serves crd; the error is for
// one it refused.
func isEstablished(crd *apiextensionsv1.CustomResourceDefinition) (bool, error) {
	established := false
	for _, cond := range crd.Status.Conditions {
		switch {
		case cond.Type == apiextensionsv1.NamesAccepted && cond.Status == apiextensionsv1.ConditionFalse:
			return false, fmt.Errorf("names not accepted: %s: %s", cond.Reason, cond.Message)
		case cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue:
			established = true
		}
	}
	return established, nil
}
