package cni

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

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
		return types.NewError(types.ErrInvalidNetworkConfig, clip(what+": "+ae.Msg, maxMsg), "")
	}
	return types.NewError(types.ErrTryAgainLater, clip(what+": "+err.Error(), maxMsg), "")
}

// invalid makes a code 7 error.
func invalid(format string, args ...any) error {
	return types.NewError(types.ErrInvalidNetworkConfig, clip(fmt.Sprintf(format, args...), maxMsg), "")
}

// How much of its input an error message quotes (maxEcho, per value) and
// how long a whole message may be (maxMsg, the last resort).
const (
	maxEcho = 256
	maxMsg  = 2048
)

// echo quotes the input s for an error message, at most maxEcho bytes of
// it: a longer s is cut at a character boundary and its length given,
// `"vn-aaaa"… (10240 bytes)`, so that a 10 kB annotation is not echoed whole.
func echo(s string) string {
	if len(s) <= maxEcho {
		return strconv.Quote(s)
	}
	return strconv.Quote(clip(s, maxEcho)) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// clip cuts s to at most n bytes at a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// mismatch makes an ErrStateMismatch error.
func mismatch(format string, args ...any) error {
	return types.NewError(ErrStateMismatch, fmt.Sprintf(format, args...), "")
}
