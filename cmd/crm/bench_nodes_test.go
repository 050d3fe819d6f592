package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cpuProfileEnv names a file a node of the cluster writes its CPU profile to, from start to
// a clean stop (SIGTERM): `go tool pprof` of an idle standby.
const cpuProfileEnv = "CRM_TEST_NODE_CPUPROFILE"

// startProfile starts the CPU profile of a node process when cpuProfileEnv asks for one;
// stop ends it.
func startProfile() (stop func()) {
	path := os.Getenv(cpuProfileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// processCPU is the processor time (user and system) process pid has used so far, from
// /proc/PID/stat (fields 14 and 15, counted after the command name's closing parenthesis).
func processCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			tb.Fatal(err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func clusterCPU(tb testing.TB, nodes []*node) time.Duration {
	var sum time.Duration
	for _, n := range nodes {
		sum += processCPU(tb, n.cmd.Process.Pid)
	}
	return sum
}

// startCluster starts n servers on a fresh schema, one after the other, and waits until
// each is ready.
func startCluster(t testing.TB, n int) []*node {
	t.Helper()
	store := freshSchema(t)
	key := filepath.Join(t.TempDir(), "audit.key")
	nodes := make([]*node, n)
	for i := range nodes {
		var env []string
		if dir := os.Getenv("NODES_BENCH_PROFILE"); dir != "" {
			env = append(env, cpuProfileEnv+"="+filepath.Join(dir, fmt.Sprintf("servers%d-node%d.prof", n, i)))
		}
		nodes[i] = startNodeWith(t, store, t.TempDir(), key, env...)
	}
	for _, nd := range nodes {
		for range 1200 {
			if code, _ := nd.call("GET", "/readyz", ""); code == http.StatusOK {
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	return nodes
}

// paced writes journeys journeys, writers at a time, each writer pausing between two, spread
// over the servers in turn.
func paced(nodes []*node, journeys, writers int) (failed int64) {
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		fails atomic.Int64
		won   sync.Map
	)
	server := func(i int) *node { return nodes[i%len(nodes)] }
	for range writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= journeys {
					return
				}
				if err := writeJourney(server, i, &won); err != nil {
					fails.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	return fails.Load()
}

// fullSpeed creates contacts with clients clients, spread over the servers, for d, and
// returns the commands done per second.
func fullSpeed(nodes []*node, clients int, d time.Duration) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		wg   sync.WaitGroup
		done atomic.Int64
	)
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			n := nodes[c%len(nodes)]
			for ctx.Err() == nil {
				if code, _ := n.call("POST", "/v1/contacts", `{"name":"Load `+strconv.Itoa(c)+`","channel":"web_form"}`); code == http.StatusCreated {
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds()
}

// BenchmarkSeveralServers measures, in one run, what three servers on one PostgreSQL cost
// against one for the same load: the processor time of every server process for the same
// paced journeys (written, applied by every projection and the process managers, served),
// the processor time of an idle cluster, and the command throughput at full speed. Run it
// once: go test -run '^$' -bench SeveralServers -benchtime 1x ./cmd/crm/
// (NODES_BENCH_JOURNEYS sets the journeys, default 300; NODES_BENCH_PROFILE, a directory,
// collects each server's CPU profile.)
func BenchmarkSeveralServers(b *testing.B) {
	journeys := 300
	if v, err := strconv.Atoi(os.Getenv("NODES_BENCH_JOURNEYS")); err == nil && v > 0 {
		journeys = v
	}
	var cpu, idle [2]time.Duration
	var rate [2]float64
	for i, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			tt := b
			nodes := startCluster(tt, n)
			time.Sleep(3 * time.Second) // the start's own work (snapshots, leases) settles
			before := clusterCPU(tt, nodes)
			time.Sleep(5 * time.Second)
			idle[i] = clusterCPU(tt, nodes) - before
			before = clusterCPU(tt, nodes)
			if failed := paced(nodes, journeys, 4); failed > 0 {
				tt.Logf("%d journeys failed", failed)
			}
			// Generous: every feed of the PostgreSQL cluster waits for its oldest transaction.
			convergeWithin(tt, nodes, 5*time.Minute)
			cpu[i] = clusterCPU(tt, nodes) - before
			rate[i] = fullSpeed(nodes, 32, 5*time.Second)
			tt.ReportMetric(cpu[i].Seconds(), "cpu-s")
			tt.ReportMetric(idle[i].Seconds()/5*100, "idle-%cpu")
			tt.ReportMetric(rate[i], "commands/s")
			for _, nd := range nodes {
				nd.stop() // writes its profile, when asked for
			}
		})
	}
	if cpu[0] > 0 {
		b.Logf("same load: %d journeys; CPU of three servers %.2fs against one %.2fs: %.2fx; idle for 5s: %.2fs against %.2fs; commands/s at full speed: %.0f against %.0f (%.2fx)",
			journeys, cpu[1].Seconds(), cpu[0].Seconds(), cpu[1].Seconds()/cpu[0].Seconds(), idle[1].Seconds(), idle[0].Seconds(),
			rate[1], rate[0], rate[1]/rate[0])
	}
}

// BenchmarkIdleStandbyProfile writes the CPU profiles of three idle servers on one store
// (each of node-N.prof in NODES_BENCH_PROFILE, a directory) over 20 s, with the share of a
// CPU each used: `go tool pprof -top cmd/crm.test DIR/node-2.prof` shows what a standby does.
// go test -run '^$' -bench IdleStandbyProfile -benchtime 1x ./cmd/crm/
func BenchmarkIdleStandbyProfile(b *testing.B) {
	dir := os.Getenv("NODES_BENCH_PROFILE")
	if dir == "" {
		dir = b.TempDir()
	}
	store := freshSchema(b)
	key := filepath.Join(b.TempDir(), "audit.key")
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = startNodeWith(b, store, b.TempDir(), key, cpuProfileEnv+"="+filepath.Join(dir, fmt.Sprintf("node-%d.prof", i)))
	}
	time.Sleep(3 * time.Second)
	before := make([]time.Duration, len(nodes))
	for i, n := range nodes {
		before[i] = processCPU(b, n.cmd.Process.Pid)
	}
	const idle = 20 * time.Second
	time.Sleep(idle)
	for i, n := range nodes {
		used := processCPU(b, n.cmd.Process.Pid) - before[i]
		owns := 0
		ps, _ := n.projections()
		for _, p := range ps {
			if p["role"] == "owner" {
				owns++
			}
		}
		b.Logf("node %d (owner of %d projections): %.1f%% of a CPU idle", i, owns, used.Seconds()/idle.Seconds()*100)
		b.ReportMetric(used.Seconds()/idle.Seconds()*100, fmt.Sprintf("node%d-%%cpu", i))
	}
	for _, n := range nodes {
		n.stop()
	}
	b.Logf("profiles in %s", dir)
}
