package cni

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/xvr-project/xvr/vrouter/api"
)

// ErrPluginNotAvailable is the CNI spec's code 50: STATUS says the plugin
// cannot serve ADDs (xvrd does not answer). The cni module has no constant.
const ErrPluginNotAvailable uint = 50

// ErrStateMismatch is the plugin-specific CNI error code CHECK returns when
// a pod interface, its address or its host veth differs from what xvrd holds.
const ErrStateMismatch uint = 100

// apiError maps an xvrd error to a CNI error, prefixing what was being done:
// a 4xx answer is a refused request (7, invalid network config); xvrd
// unreachable or a 5xx is 11 (try again later).
func apiError(err error, what string) error {
	var ae *api.Error
	if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 {
		return types.NewError(types.ErrInvalidNetworkConfig, what+": "+ae.Msg, "")
	}
	return types.NewError(types.ErrTryAgainLater, what+": "+err.Error(), "")
}

// invalid makes a code 7 error.
func invalid(format string, args ...any) error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(format, args...), "")
}

// mismatch makes an ErrStateMismatch error.
func mismatch(format string, args ...any) error {
	return types.NewError(ErrStateMismatch, fmt.Sprintf(format, args...), "")
}
