package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is a `crm serve` child process on a loopback port.
type server struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has ended
	waitErr error         // its exit, once exited is closed
	logPath string
	base    string // http://127.0.0.1:PORT
	token   string
}

// clockTicks is the unit of utime and stime in /proc/PID/stat: USER_HZ, 100 on every Linux
// architecture Go runs on (the kernel converts to it whatever its internal HZ).
const clockTicks = 100

// startServer starts crm serve on the store of t, with an admin token of its own, and waits
// until it answers /healthz. Its log goes to serve.log in the data directory.
func startServer(ctx context.Context, o options, t target) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	token, err := randomToken()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(t.dataDir, "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("server log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(o.crm, "serve")
	cmd.Env = serverEnv(os.Environ(), o, t, port, token)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s serve: %w", o.crm, err)
	}
	s := &server{cmd: cmd, exited: make(chan struct{}), logPath: logPath,
		base: "http://127.0.0.1:" + strconv.Itoa(port), token: token}
	go func() { s.waitErr = cmd.Wait(); close(s.exited) }()
	if err := s.waitHealthy(ctx, time.Minute); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// serverEnv is the environment of the child: ours without any CRM_ setting, then the run's.
func serverEnv(environ []string, o options, t target, port int, token string) []string {
	var env []string
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "CRM_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"CRM_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"CRM_DATA_DIR="+t.dataDir,
		"CRM_TOKENS=load:admin:"+token,
		"CRM_LOG_LEVEL=warn",
	)
	if t.store != "" {
		env = append(env, "CRM_STORE="+t.store)
	}
	if o.snapshotEach != "" {
		env = append(env, "CRM_SNAPSHOT_EVERY="+o.snapshotEach)
	}
	return env
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// waitHealthy polls /healthz until it answers 200, the process ends or within runs out.
func (s *server) waitHealthy(ctx context.Context, within time.Duration) error {
	c := newClient(s.base, s.token, 1)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if st, _, err := c.do(ctx, "GET", "/healthz", nil); err == nil && st == 200 {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("crm serve ended before answering (%v): %s", s.waitErr, s.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("crm serve did not answer /healthz within %s: %s", within, s.logTail())
}

// stop ends the server as an operator would (SIGTERM), and kills it if it has not ended
// within 30 seconds.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// alive reports an error when the process has ended.
func (s *server) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("crm serve ended (%v): %s", s.waitErr, s.logTail())
	default:
		return nil
	}
}

// logTail is the end of the server's log, for an error message.
func (s *server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// cpu is the processor time the server has used so far (user and system).
func (s *server) cpu() (time.Duration, error) {
	return processCPU(s.cmd.Process.Pid)
}

func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a /proc/PID/stat line. The
// command name (field 2) is in parentheses and may hold spaces, so fields are counted from
// the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, errors.New("stat: too few fields")
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// cpuMeter measures the server's processor time over a span.
type cpuMeter struct {
	s     *server
	start time.Duration
	at    time.Time
}

func (s *server) meter() (cpuMeter, error) {
	c, err := s.cpu()
	return cpuMeter{s: s, start: c, at: time.Now()}, err
}

// read is the processor time used and the wall time passed since the meter started.
func (m cpuMeter) read() (used, wall time.Duration, err error) {
	c, err := m.s.cpu()
	return c - m.start, time.Since(m.at), err
}

// copyFile copies src to dst (the kernel copies the bytes where it can).
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	return nil
}

// logCount counts the occurrences of sub in the server's log so far.
func (s *server) logCount(sub string) int {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), sub)
}
