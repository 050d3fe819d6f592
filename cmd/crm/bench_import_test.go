package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkImport measures, on SQLite and PostgreSQL, the import of a contacts file with
// history (CRM_BENCH_IMPORT_ROWS rows, default 100,000: each contact created at its own past
// time, most moved on to a later phase) three ways, each into a fresh store:
//
//   - cli:     `crm import contacts FILE` (the store only; peak memory of the process);
//   - imports: POST /v1/imports to `crm serve`, until GET /v1/imports/{id} says done (the
//     server also runs its projections);
//   - http64:  the same commands (create with occurred_at, then the phase) sent to `crm
//     serve` by 64 clients, the baseline of the same run;
//
// then the export of the imported contacts as CSV (GET /v1/contacts?format=csv) from the
// server of the imports run, once its read models have caught up: time, and the server's
// peak memory during the export (its high-water mark reset before). Run with
// `make bench-import` (-benchtime 1x).
func BenchmarkImport(b *testing.B) {
	rows := 100_000
	if v := os.Getenv("CRM_BENCH_IMPORT_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("CRM_BENCH_IMPORT_ROWS %q", v)
		}
		rows = n
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "crm")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build crm: %v\n%s", err, out)
	}
	file := filepath.Join(dir, "contacts.csv")
	if err := writeBenchContacts(file, rows); err != nil {
		b.Fatal(err)
	}
	backends := []string{"sqlite", "postgres"}
	if v := os.Getenv("CRM_BENCH_IMPORT_BACKENDS"); v != "" {
		backends = strings.Split(v, ",")
	}
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			store := func(name string) map[string]string {
				env := map[string]string{"CRM_DATA_DIR": filepath.Join(b.TempDir(), name), "CRM_LOG_LEVEL": "warn"}
				if backend == "postgres" {
					schema := tempSchema(b, "crm_bench_import_")
					b.Cleanup(func() { _ = dropSchemas(context.Background(), b, schema+"_readmodels") })
					env["CRM_STORE"] = benchSchemaURL(b, schema)
				}
				return env
			}
			for range b.N {
				// Each figure is also printed as soon as it is measured: a run at 100,000 rows is long.
				cli := benchImportCLI(b, bin, store("cli"), file, rows)
				fmt.Fprintf(os.Stderr, "%s: crm import %.0f rows/s (%.1f s), peak RSS %d kB\n", backend, cli.rate, cli.seconds, cli.peakKB)
				http64 := benchImportHTTP(b, bin, store("http64"), file, rows)
				fmt.Fprintf(os.Stderr, "%s: 64 HTTP clients %.0f rows/s (%.1f s)\n", backend, http64.rate, http64.seconds)
				imports, export := benchImportEndpoint(b, bin, store("imports"), file, rows)
				b.ReportMetric(cli.rate, "cli-rows/s")
				b.ReportMetric(imports.rate, "imports-rows/s")
				b.ReportMetric(http64.rate, "http64-rows/s")
				b.ReportMetric(cli.rate/http64.rate, "cli/http64")
				b.ReportMetric(float64(cli.peakKB)/1024, "cli-peak-MiB")
				b.ReportMetric(export.seconds, "export-s")
				b.ReportMetric(float64(export.peakKB)/1024, "export-peak-MiB")
				b.Logf("%s, %d rows: crm import %.0f rows/s (%.1f s, peak RSS %.0f MiB); POST /v1/imports %.0f rows/s (%.1f s, server peak RSS %.0f MiB); 64 HTTP clients %.0f rows/s (%.1f s); export %d contacts as CSV in %.2f s (%.1f MB, %.0f rows/s), server peak RSS %.0f MiB during it (%.0f MiB before)",
					backend, rows, cli.rate, cli.seconds, float64(cli.peakKB)/1024, imports.rate, imports.seconds,
					float64(imports.peakKB)/1024, http64.rate, http64.seconds, export.rows, export.seconds,
					float64(export.bytes)/1e6, float64(export.rows)/export.seconds, float64(export.peakKB)/1024, float64(export.beforeKB)/1024)
			}
		})
	}
}

type importFigures struct {
	rate, seconds float64
	peakKB        int64
}

type exportFigures struct {
	rows             int
	bytes            int64
	seconds          float64
	peakKB, beforeKB int64
}

var benchPhases = []string{"lead", "lead", "lead", "lead", "approach", "approach", "discovery", "discovery", "proposal", "won"}
var benchChannels = []string{"web_form", "seminar", "exhibition", "direct_mail", "social_ad", "referral", "other"}

// writeBenchContacts writes n contacts with their creation times over two years, 60% of
// them moved on from lead.
func writeBenchContacts(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(bufio.NewWriter(f))
	_ = w.Write([]string{"key", "name", "email", "company", "channel", "phase", "occurred_at"})
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		at := start.Add(time.Duration(i) * (2 * 365 * 24 * time.Hour / time.Duration(n)))
		_ = w.Write([]string{fmt.Sprintf("k%06d", i), fmt.Sprintf("顧客 %06d", i), fmt.Sprintf("user%06d@example.com", i),
			fmt.Sprintf("会社 %d", i%5000), benchChannels[i%len(benchChannels)], benchPhases[(i*7)%len(benchPhases)],
			at.Format(time.RFC3339)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return f.Close()
}

func environ(env map[string]string) []string {
	out := os.Environ()
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

func benchImportCLI(b *testing.B, bin string, env map[string]string, file string, rows int) importFigures {
	cmd := exec.Command(bin, "import", "contacts", file, "--progress", "none")
	cmd.Env = environ(env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("crm import: %v\n%s", err, stderr.String())
	}
	elapsed := time.Since(start)
	var rep struct {
		Created int `json:"created"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || rep.Created != rows {
		b.Fatalf("crm import: %v %s", err, stdout.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return importFigures{rate: float64(rows) / elapsed.Seconds(), seconds: elapsed.Seconds(), peakKB: ru.Maxrss}
}

// serveChild is `crm serve` running as a child process.
type serveChild struct {
	url, token string
	cmd        *exec.Cmd
	client     *http.Client
	stopOnce   sync.Once
}

// stop stops the server (its projections would go on using the machine).
func (s *serveChild) stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		_ = s.cmd.Wait()
	})
}

func startServe(b *testing.B, bin string, env map[string]string) *serveChild {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const token = "bench-import-admin-token-0001"
	env["CRM_ADDR"], env["CRM_TOKENS"] = addr, "bench:admin:"+token
	cmd := exec.Command(bin, "serve")
	cmd.Env = environ(env)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &serveChild{url: "http://" + addr, token: token, cmd: cmd,
		client: &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}}
	b.Cleanup(s.stop)
	for i := 0; ; i++ {
		if resp, err := http.Get(s.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if i > 300 {
			b.Fatalf("crm serve did not start: %s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *serveChild) do(method, path, contentType string, body io.Reader, headers ...string) ([]byte, error) {
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode >= 300 {
		err = fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return out, err
}

// status reads /proc/PID/status field (VmRSS, VmHWM) in kB.
func (s *serveChild) status(field string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// resetPeak resets the process's high-water mark of resident memory to its current size.
func (s *serveChild) resetPeak() {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.cmd.Process.Pid), []byte("5"), 0o600)
}

func benchImportHTTP(b *testing.B, bin string, env map[string]string, file string, rows int) importFigures {
	s := startServe(b, bin, env)
	f, err := os.Open(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	if _, err := r.Read(); err != nil {
		b.Fatal(err)
	}
	jobs := make(chan []string, 256)
	var (
		wg     sync.WaitGroup
		failed atomic.Value
		done   atomic.Int64
	)
	start := time.Now()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rec := range jobs {
				if err := sendRow(s, rec); err != nil {
					failed.CompareAndSwap(nil, err)
					continue
				}
				done.Add(1)
			}
		}()
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		jobs <- rec
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	s.stop()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("64 HTTP clients: %v", err)
	}
	return importFigures{rate: float64(done.Load()) / elapsed.Seconds(), seconds: elapsed.Seconds()}
}

// sendRow sends the commands of one row as a client would: the contact with its business
// time, then its phase.
func sendRow(s *serveChild, rec []string) error {
	key, name, email, company, channel, phase, at := rec[0], rec[1], rec[2], rec[3], rec[4], rec[5], rec[6]
	body, _ := json.Marshal(map[string]string{"name": name, "email": email, "company": company, "channel": channel, "occurred_at": at})
	out, err := s.do(http.MethodPost, "/v1/contacts", "application/json", bytes.NewReader(body), "Idempotency-Key", key)
	if err != nil {
		return err
	}
	if phase == "lead" {
		return nil
	}
	var res struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return err
	}
	body, _ = json.Marshal(map[string]string{"phase": phase, "reason": "imported", "occurred_at": at})
	_, err = s.do(http.MethodPost, "/v1/contacts/"+res.ID+"/phase", "application/json", bytes.NewReader(body), "Idempotency-Key", key+":phase")
	return err
}

func benchImportEndpoint(b *testing.B, bin string, env map[string]string, file string, rows int) (importFigures, exportFigures) {
	s := startServe(b, bin, env)
	f, err := os.Open(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s.resetPeak()
	start := time.Now()
	out, err := s.do(http.MethodPost, "/v1/imports?kind=contacts", "text/csv", f)
	if err != nil {
		b.Fatal(err)
	}
	var st struct {
		ID     string `json:"id"`
		State  string `json:"state"`
		Error  string `json:"error"`
		Report struct {
			Created int `json:"created"`
		} `json:"report"`
	}
	for {
		if err := json.Unmarshal(out, &st); err != nil {
			b.Fatal(err)
		}
		if st.State != "running" {
			break
		}
		time.Sleep(100 * time.Millisecond)
		if out, err = s.do(http.MethodGet, "/v1/imports/"+st.ID, "", nil); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	if st.State != "done" || st.Report.Created != rows {
		b.Fatalf("import: %s", out)
	}
	imp := importFigures{rate: float64(rows) / elapsed.Seconds(), seconds: elapsed.Seconds(), peakKB: s.status("VmHWM")}
	defer s.stop()
	fmt.Fprintf(os.Stderr, "POST /v1/imports %.0f rows/s (%.1f s), server peak RSS %d kB\n", imp.rate, imp.seconds, imp.peakKB)
	return imp, benchExport(b, s, rows)
}

// benchExport waits for the read models to catch up, then exports every contact as CSV.
func benchExport(b *testing.B, s *serveChild, rows int) exportFigures {
	deadline := time.Now().Add(30 * time.Minute)
	for {
		out, err := s.do(http.MethodGet, "/v1/projections", "", nil)
		if err != nil {
			b.Fatal(err)
		}
		var st struct {
			Projections []struct {
				Lag struct {
					Events int64 `json:"events"`
				} `json:"lag"`
			} `json:"projections"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			b.Fatal(err)
		}
		caught := true
		for _, p := range st.Projections {
			caught = caught && p.Lag.Events == 0
		}
		if caught {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the read models did not catch up: %s", out)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(2 * time.Second) // the server idle: its memory is what it keeps
	before := s.status("VmRSS")
	s.resetPeak()
	start := time.Now()
	req, err := http.NewRequest(http.MethodGet, s.url+"/v1/contacts?format=csv", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body := &countingBody{r: resp.Body}
	cr := csv.NewReader(bufio.NewReader(body))
	n := -1
	for {
		_, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatalf("export: %v", err)
		}
		n++
	}
	elapsed := time.Since(start)
	if n != rows {
		b.Fatalf("exported %d contacts, want %d", n, rows)
	}
	return exportFigures{rows: n, bytes: body.n, seconds: elapsed.Seconds(), peakKB: s.status("VmHWM"), beforeKB: before}
}

type countingBody struct {
	r io.Reader
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
