package main

import (
	"bytes"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// globalFlags are accepted by every command and documented once, at the top.
var globalFlags = map[string]bool{"socket": true, "o": true, "timeout": true}

// docHeadings returns the backticked items of docs/cli.md's "###" headings:
// each is a command's usage line.
func docHeadings(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	items := map[string]bool{}
	tick := regexp.MustCompile("`([^`]+)`")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "### ") {
			for _, m := range tick.FindAllStringSubmatch(l, -1) {
				items[m[1]] = true
			}
		}
	}
	return items
}

// TestUsageMatchesDocs: every command's usage line (what -h and help print)
// is a heading of docs/cli.md and every heading a command's usage line.
func TestUsageMatchesDocs(t *testing.T) {
	docs := docHeadings(t)
	for name, c := range commands {
		if !docs[c.usage] {
			t.Errorf("xvrctl %s: usage %q is not a heading of docs/cli.md", name, c.usage)
		}
		delete(docs, c.usage)
	}
	for h := range docs {
		t.Errorf("docs/cli.md heading %q is no command's usage", h)
	}
}

// TestUsageNamesEveryFlag: each command's usage line names every flag of
// the command (its -h lists them), the global ones excepted.
func TestUsageNamesEveryFlag(t *testing.T) {
	flagLine := regexp.MustCompile(`^  -(\S+)`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		var out, errb bytes.Buffer
		if code := runWith(strings.NewReader(""), append(strings.Fields(name), "-h"), &out, &errb); code != 0 {
			t.Fatalf("xvrctl %s -h = %d: %s", name, code, errb.String())
		}
		usage := commands[name].usage
		if !strings.HasPrefix(errb.String(), "usage: xvrctl "+usage+"\n") {
			t.Errorf("xvrctl %s -h does not start with its usage line:\n%s", name, errb.String())
		}
		for _, l := range strings.Split(errb.String(), "\n") {
			m := flagLine.FindStringSubmatch(l)
			if m == nil || globalFlags[m[1]] {
				continue
			}
			dash := "--"
			if len(m[1]) == 1 {
				dash = "-"
			}
			if !regexp.MustCompile(`(^|[ (\[|])` + regexp.QuoteMeta(dash+m[1]) + `($|[ )\]|])`).MatchString(usage) {
				t.Errorf("xvrctl %s: usage %q does not name its flag %s%s", name, usage, dash, m[1])
			}
		}
	}
}
