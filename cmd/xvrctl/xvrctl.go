package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/xvr-project/xvr/vrouter/api"
)

// errUsage is returned after a usage message has been printed.
var errUsage = errors.New("usage")

// cli is one invocation: where it writes, how it reaches xvrd, how it prints.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	socket         string
	output         string
	timeout        time.Duration
	usageLine      string // of the command being run
}

// command is one subcommand: its usage line and what it does with its args.
type command struct {
	usage string
	run   func(c *cli, args []string) error
}

// commands maps each command (and "group sub" for grouped ones) to its code.
var commands = map[string]command{
	"apply":          {"apply -f FILE|-", (*cli).apply},
	"delete":         {"delete -f FILE|- [--ignore-not-found]", (*cli).deleteFile},
	"network list":   {"network list [-o table|json]", (*cli).networkList},
	"network get":    {"network get NS/NAME [-o table|json]", (*cli).networkGet},
	"network delete": {"network delete NS/NAME [--ignore-not-found]", (*cli).networkDelete},
	"port list":      {"port list [-o table|json]", (*cli).portList},
	"port add":       {"port add --id ID --network NS/NAME --host-if IF [--ip IP] [--mac MAC]", (*cli).portAdd},
	"port del":       {"port del ID [--ignore-not-found]", (*cli).portDel},
	"pod apply":      {"pod apply -f FILE|-", (*cli).podApply},
	"pod list":       {"pod list [-o table|json]", (*cli).podList},
	"pod get":        {"pod get NS/NAME [-o table|json]", (*cli).podGet},
	"pod status":     {"pod status NS/NAME [-o table|json]", (*cli).podStatus},
	"pod delete":     {"pod delete NS/NAME [--ignore-not-found]", (*cli).podDelete},
	"route list":     {"route list [-o table|json]", (*cli).routeList},
	"route add":      {"route add --network NS/NAME --prefix PREFIX (--port ID | --tunnel NODE [--label L] [--vni V] [--encaps K,K] [--mac MAC] | --fabric NODE | --discard)", (*cli).routeAdd},
	"route del":      {"route del --network NS/NAME --prefix PREFIX [--ignore-not-found]", (*cli).routeDel},
	"vif":            {"vif [-o table|json]", (*cli).vif},
	"rt":             {"rt --vn NS/NAME [-o table|json]", (*cli).rt},
	"nh":             {"nh [-o table|json]", (*cli).nh},
	"dropstats":      {"dropstats [--all] [-o table|json]", (*cli).dropstats},
	"flow":           {"flow [-o table|json]", (*cli).flow},
	"policy":         {"policy [-o table|json]", (*cli).policy},
	"status":         {"status [-o table|json]", (*cli).status},
}

// run is xvrctl with its arguments (without the program name); it returns
// the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	return runWith(os.Stdin, args, stdout, stderr)
}

func runWith(stdin io.Reader, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	err := c.main(args)
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 1
	default:
		fmt.Fprintf(stderr, "xvrctl: %s\n", oneLine(err.Error()))
		return 1
	}
}

func (c *cli) main(args []string) error {
	fs := c.flags("xvrctl")
	fs.Usage = c.usage
	if err := fs.Parse(args); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) == 0 || args[0] == "help" {
		c.usage()
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	name, rest := args[0], args[1:]
	if _, ok := commands[name]; !ok && len(rest) > 0 {
		name, rest = args[0]+" "+args[1], args[2:]
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(c.stderr, "xvrctl: unknown command %q\n", strings.Join(args[:min(2, len(args))], " "))
		c.usage()
		return errUsage
	}
	c.usageLine = cmd.usage
	return cmd.run(c, rest)
}

func (c *cli) usage() {
	fmt.Fprintf(c.stderr, "usage: xvrctl [--socket PATH] [-o table|json] [--timeout D] COMMAND [ARGS]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(c.stderr, "  xvrctl %s\n", commands[n].usage)
	}
	fmt.Fprintf(c.stderr, "\nThe socket defaults to $XVR_SOCKET or %s.\n", api.DefaultSocket)
}

// flags returns a flag set with the global flags, which every command
// accepts too; their defaults are what the global ones were set to.
func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: xvrctl %s\n", c.usageLine)
		fs.PrintDefaults()
	}
	socket := c.socket
	if socket == "" {
		socket = os.Getenv("XVR_SOCKET")
	}
	if socket == "" {
		socket = api.DefaultSocket
	}
	fs.StringVar(&c.socket, "socket", socket, "xvrd's API socket ($XVR_SOCKET)")
	fs.StringVar(&c.output, "o", or(c.output, "table"), "output format of read commands: table or json")
	fs.DurationVar(&c.timeout, "timeout", orDuration(c.timeout, 30*time.Second), "give up on xvrd after this long")
	return fs
}

// parse parses a command's flags, which must leave exactly nargs arguments
// (or any number if nargs < 0), and checks the output format.
func (c *cli) parse(fs *flag.FlagSet, args []string, nargs int) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, err
	}
	if err != nil {
		return nil, errUsage
	}
	if nargs >= 0 && len(pos) != nargs {
		fmt.Fprintf(c.stderr, "xvrctl %s: want %d argument(s), got %d\n", fs.Name(), nargs, len(pos))
		fs.Usage()
		return nil, errUsage
	}
	if c.output != "table" && c.output != "json" {
		return nil, fmt.Errorf("-o %q: want table or json", c.output)
	}
	return pos, nil
}

// parseInterspersed parses flags anywhere among the arguments ("port del
// ID --ignore-not-found") and returns the positional ones; after "--"
// everything is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// client returns an API client and a context bounded by --timeout.
func (c *cli) client() (*api.Client, context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	return api.NewClient(c.socket), ctx, cancel
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// splitNetwork parses "namespace/name"; a bare name is in "default".
func splitNetwork(s string) (namespace, name string, err error) {
	ns, n, ok := strings.Cut(s, "/")
	if !ok {
		ns, n = "default", s
	}
	if ns == "" || n == "" || strings.Contains(n, "/") {
		return "", "", fmt.Errorf("network %q: want NAMESPACE/NAME", s)
	}
	return ns, n, nil
}
