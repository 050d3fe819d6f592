package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestReadmeExamples runs every shell example of the README exactly as written, in a fresh
// directory where `crm serve` runs on the embedded default (port 8080, data in ./data), with
// the binary built from this tree first on PATH. A block is an example when it is fenced as
// ```sh; the blocks that cannot run inside a test (the make targets themselves, Docker) are
// preceded by a `<!-- not run: why -->` line. An example passes when it exits 0 and, where it
// shows an answer as a `# {...}` comment, the answer has the same members with the same values
// (`…` stands for any value).
//
// When the machine lets it, the server and the examples run in a network namespace of their
// own, so port 8080 is theirs even if another server uses it on the host.
func TestReadmeExamples(t *testing.T) {
	examples := readmeExamples(t, "../../README.md")
	var run []readmeExample
	for _, ex := range examples {
		if ex.notRun == "" {
			run = append(run, ex)
		}
	}
	if len(run) == 0 {
		t.Fatal("the README has no example to run")
	}
	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "crm"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build crm: %v\n%s", err, out)
	}
	dir := filepath.Join(work, "readme")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	script := examplesScript(dir, run)
	if err := os.WriteFile(filepath.Join(work, "examples.sh"), []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(work, "examples.sh"))
	if exec.Command("unshare", "-n", "true").Run() == nil {
		cmd = exec.Command("unshare", "-n", "bash", "-c", "ip link set lo up && exec bash "+filepath.Join(work, "examples.sh"))
	}
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "CRM_LOG_LEVEL=warn")
	if out, err := cmd.CombinedOutput(); err != nil {
		serveLog, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
		t.Fatalf("examples script: %v\n%s\nserver log:\n%s", err, out, serveLog)
	}
	for i, ex := range run {
		t.Run(fmt.Sprintf("line_%d", ex.line), func(t *testing.T) {
			status, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("example%d.status", i)))
			stdout, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("example%d.out", i)))
			stderr, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("example%d.err", i)))
			if code := strings.TrimSpace(string(status)); code != "0" {
				t.Fatalf("README line %d exited %s:\n%s\nstdout: %s\nstderr: %s", ex.line, code, ex.code, stdout, stderr)
			}
			if ex.answer == "" {
				return
			}
			if err := matchAnswer(ex.answer, stdout); err != nil {
				t.Fatalf("README line %d: %v\nshown: %s\ngot:   %s", ex.line, err, ex.answer, stdout)
			}
		})
	}
}

// readmeExample is one ```sh block of the README.
type readmeExample struct {
	line   int    // of the opening fence
	code   string // the block as written
	answer string // the JSON shown as `# ...` comment lines after the last command, if any
	notRun string // why the block is not run
}

func readmeExamples(t *testing.T, path string) []readmeExample {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		examples []readmeExample
		cur      *readmeExample
		prev     string
		lines    []string
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &readmeExample{line: n}
			if why, ok := strings.CutPrefix(strings.TrimSpace(prev), "<!-- not run:"); ok {
				cur.notRun = strings.TrimSpace(strings.TrimSuffix(why, "-->"))
			}
			lines = nil
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.code = strings.Join(lines, "\n") + "\n"
			cur.answer = shownAnswer(lines)
			examples = append(examples, *cur)
			cur = nil
		case cur != nil:
			lines = append(lines, line)
		}
		if strings.TrimSpace(line) != "" {
			prev = line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return examples
}

// shownAnswer is the JSON of the comment lines that close a block, when they hold JSON.
func shownAnswer(lines []string) string {
	var shown []string
	for i := len(lines) - 1; i >= 0; i-- {
		c, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), "#")
		if !ok {
			break
		}
		shown = append([]string{strings.TrimSpace(c)}, shown...)
	}
	answer := strings.Join(shown, "\n")
	if !strings.HasPrefix(answer, "{") && !strings.HasPrefix(answer, "[") {
		return ""
	}
	return answer
}

// examplesScript starts the server as `make run` does (in dir, data in ./data, port 8080),
// waits for it, and runs each example in a shell of its own, recording its exit status and
// output.
func examplesScript(dir string, examples []readmeExample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "set -u\ncd %s\n", strconv.Quote(dir))
	b.WriteString("crm serve > serve.log 2>&1 &\nserver=$!\ntrap 'kill $server 2>/dev/null; wait $server' EXIT\n")
	b.WriteString("for i in $(seq 100); do curl -sf localhost:8080/healthz >/dev/null && break; sleep 0.1; done\n")
	b.WriteString("curl -sf localhost:8080/healthz >/dev/null || { echo 'crm serve did not answer on port 8080' >&2; exit 1; }\n")
	for i, ex := range examples {
		name := fmt.Sprintf("example%d.sh", i)
		fmt.Fprintf(&b, "cat > %s <<'README_EXAMPLE'\n%sREADME_EXAMPLE\n", name, ex.code)
		fmt.Fprintf(&b, "bash -eo pipefail %s > example%d.out 2> example%d.err; echo $? > example%d.status\n", name, i, i, i)
	}
	return b.String()
}

// matchAnswer reports whether got is the JSON answer shown, where "…" matches any value.
func matchAnswer(shown string, got []byte) error {
	var want, have any
	if err := json.Unmarshal([]byte(shown), &want); err != nil {
		return fmt.Errorf("the README shows an answer that is not JSON: %w", err)
	}
	if err := json.Unmarshal(got, &have); err != nil {
		return fmt.Errorf("the answer is not JSON: %w", err)
	}
	return matchValue("$", want, have)
}

func matchValue(path string, want, have any) error {
	if s, ok := want.(string); ok && s == "…" {
		return nil
	}
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %v", path, have)
		}
		if len(h) != len(w) {
			return fmt.Errorf("%s: want members %v, got %v", path, keys(w), keys(h))
		}
		for k, wv := range w {
			hv, ok := h[k]
			if !ok {
				return fmt.Errorf("%s: member %q missing", path, k)
			}
			if err := matchValue(path+"."+k, wv, hv); err != nil {
				return err
			}
		}
		return nil
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return fmt.Errorf("%s: want %d elements, got %v", path, len(w), have)
		}
		for i := range w {
			if err := matchValue(fmt.Sprintf("%s[%d]", path, i), w[i], h[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if !reflect.DeepEqual(want, have) {
		return fmt.Errorf("%s: want %v, got %v", path, want, have)
	}
	return nil
}

func keys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
