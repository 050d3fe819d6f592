package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// nodeEnv marks a run of the test binary that is a `crm serve` node of TestSeveralServers.
const nodeEnv = "CRM_TEST_SERVE_NODE"

// TestMain lets the test binary run as a server process (see startNode): a node that can be
// killed with SIGKILL, as a real one is.
func TestMain(m *testing.M) {
	if os.Getenv(nodeEnv) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		stopProfile := startProfile()
		err := run(ctx, []string{"serve", "--addr", os.Getenv(nodeEnv)}, os.Getenv, os.Stdout, os.Stderr)
		stop()
		stopProfile()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// node is a `crm serve` process of the cluster.
type node struct {
	t    testing.TB
	addr string
	env  []string
	cmd  *exec.Cmd
	logs *syncBuffer
}

const clusterToken = "admin-token-of-the-cluster-0123"

// nodeClient gives up on a server that does not answer (killed mid-request).
var nodeClient = &http.Client{Timeout: 20 * time.Second}

// startNode starts a server of store with its own data directory and the deployment's audit
// key file.
func startNode(t testing.TB, store, dataDir, auditKey string) *node {
	t.Helper()
	return startNodeWith(t, store, dataDir, auditKey)
}

// startNodeWith is startNode with more environment variables (NAME=VALUE).
func startNodeWith(t testing.TB, store, dataDir, auditKey string, env ...string) *node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	n := &node{t: t, addr: addr, logs: &syncBuffer{}, env: append(os.Environ(), nodeEnv+"="+addr, "CRM_STORE="+store,
		"CRM_DATA_DIR="+dataDir, "CRM_AUDIT_KEY_FILE="+auditKey, "CRM_TOKENS=admin:admin:"+clusterToken, "CRM_LOG_LEVEL=warn", "CRM_SNAPSHOT_EVERY=1000",
		// The held position of stallFeed holds back this log's feed: it is kept for as short a
		// time as the alarm allows.
		"CRM_FEED_STALL_AFTER=500ms")}
	n.env = append(n.env, env...)
	n.start()
	return n
}

func (n *node) start() {
	n.t.Helper()
	n.cmd = exec.Command(os.Args[0], "-test.run=^$")
	n.cmd.Env = n.env
	n.cmd.Stdout, n.cmd.Stderr = io.Discard, n.logs
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { n.kill() })
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + n.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		if i == 600 {
			n.t.Fatalf("node %s did not come up: %v\n%s", n.addr, err, n.logs)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// stop ends the process with SIGTERM, as an orchestrator does, and waits for it.
func (n *node) stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	_ = n.cmd.Wait()
	n.cmd = nil
}

// kill ends the process with SIGKILL: nothing is released, no lease handed over.
func (n *node) kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
}

// call sends a request; it returns the status (0 when there was no answer: the command may
// or may not have been recorded) and the decoded answer.
func (n *node) call(method, path, body string) (int, map[string]any) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://"+n.addr+path, rd)
	req.Header.Set("Authorization", "Bearer "+clusterToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := nodeClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func (n *node) mustCall(method, path, body string) map[string]any {
	n.t.Helper()
	code, m := n.call(method, path, body)
	if code >= 300 || code == 0 {
		n.t.Fatalf("%s %s on %s: %d %v", method, path, n.addr, code, m)
	}
	return m
}

// projections returns GET /v1/projections by projection name, and the feed.
func (n *node) projections() (map[string]map[string]any, map[string]any) {
	code, m := n.call("GET", "/v1/projections", "")
	if code != http.StatusOK {
		return nil, nil
	}
	byName := map[string]map[string]any{}
	for _, p := range m["projections"].([]any) {
		p := p.(map[string]any)
		byName[p["name"].(string)] = p
	}
	feed, _ := m["feed"].(map[string]any)
	return byName, feed
}

// Three servers on one PostgreSQL schema, commands spread over them, one of them killed with
// SIGKILL and started again, over and over; a writer holds back the feed for a while.
// In the end every server gives the same answers, a rebuild of every read model changes
// nothing, every won deal moved its contact once, nothing is parked, and no server ever
// said lag 0 while the feed was stalled.
//
// Not parallel, and each server's pools bounded by pool_max_conns=4 (about 14 connections a
// server): the PostgreSQL server's default 100 connections are shared with the other tests
// and with the rebuilds of `crm projections diff`.
func TestSeveralServers(t *testing.T) {
	began := time.Now()
	store := boundedSchema(t)
	auditKey := filepath.Join(t.TempDir(), "audit", "audit.key") // created by the first server
	nodes := make([]*node, 3)
	for i := range nodes { // one after the other: the first creates the schema
		nodes[i] = startNode(t, store, t.TempDir(), auditKey)
	}
	var (
		mu      sync.Mutex
		current = func(i int) *node { mu.Lock(); defer mu.Unlock(); return nodes[i] }
	)

	// Writers: contacts moved along, deals opened and won, on every server in turn.
	ctx, stopWriting := context.WithCancel(context.Background())
	var (
		wg      sync.WaitGroup
		written atomic.Int64
		won     sync.Map // contact id -> deal id, for each won deal
	)
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if err := writeJourney(current, w+3*i, &won); err == nil {
					written.Add(1)
					time.Sleep(20 * time.Millisecond) // a steady load, not a flood: 2 cores
				} else {
					time.Sleep(50 * time.Millisecond) // a server killed or starting
				}
			}
		})
	}

	// Kill the server that applies the board, start it again, three times; after each kill,
	// time how long until a write on another server reaches the board.
	var takeovers []time.Duration
	for round := range 3 {
		time.Sleep(time.Second)
		victim := ownerOf(t, nodes, "pipeline_board")
		mu.Lock()
		n := nodes[victim]
		mu.Unlock()
		killed := time.Now()
		n.kill()
		other := current((victim + 1) % 3)
		pos := int64(other.mustCall("POST", "/v1/contacts", `{"name":"after kill `+strconv.Itoa(round)+`","channel":"web_form"}`)["position"].(float64))
		f := other.mustCall("GET", "/v1/pipeline/board?min_position="+strconv.FormatInt(pos, 10), "")["freshness"].(map[string]any)
		for f["stale"] == true {
			if time.Since(killed) > 30*time.Second {
				for _, n := range nodes {
					ps, feed := n.projections()
					t.Logf("%s: feed %v board %v\n%s", n.addr, feed, ps["pipeline_board"], n.logs)
				}
				t.Fatalf("round %d: the board has not reached %d 30s after the kill: %v", round, pos, f)
			}
			f = other.mustCall("GET", "/v1/pipeline/board?min_position="+strconv.FormatInt(pos, 10), "")["freshness"].(map[string]any)
		}
		takeovers = append(takeovers, time.Since(killed))
		n.start()
	}
	t.Logf("from SIGKILL of the owner to a write reaching the board on another server: %v", takeovers)

	// A writer that holds a position holds back the feed while commands go on: every server
	// says stalled, none says lag 0.
	t.Logf("%.1fs: kills done", time.Since(began).Seconds())
	stallFeed(t, store, nodes, current)
	t.Logf("%.1fs: stall seen", time.Since(began).Seconds())

	stopWriting()
	wg.Wait()
	t.Logf("%d journeys written", written.Load())

	waitDealWon(t, nodes[0], &won)
	t.Logf("%.1fs: deal-won effects seen", time.Since(began).Seconds())
	head := converge(t, nodes)
	t.Logf("%.1fs: converged", time.Since(began).Seconds())
	assertSameAnswers(t, nodes, head)
	assertDealWonOnce(t, nodes, &won)
	for _, n := range nodes {
		if list := n.mustCall("GET", "/v1/projections/parked", "")["parked"].([]any); len(list) != 0 {
			t.Errorf("%s: parked %v", n.addr, list)
		}
	}
	t.Logf("%.1fs: answers compared", time.Since(began).Seconds())
	for i, n := range nodes {
		if code, m := n.call("GET", "/readyz", ""); code != http.StatusOK {
			t.Errorf("server %d: /readyz once the feed moves: %d %v", i, code, m)
		}
	}
	assertOneAuditTrail(t, nodes, store, auditKey)
	for name := range mustProjections(t, nodes[0]) {
		out, _, err := crm(t, map[string]string{"CRM_STORE": store, "CRM_DATA_DIR": t.TempDir()}, "projections", "diff", name, "--quiet")
		if err != nil || !strings.Contains(out, "identical") || strings.Contains(out, "added") {
			t.Errorf("diff of %s after the run: %v\n%s", name, err, out)
		}
	}
}

// writeJourney writes one contact's journey through the servers in turn: a contact, a phase,
// a deal, and every other time the deal won (the deal-won process then moves the contact).
func writeJourney(server func(int) *node, i int, won *sync.Map) error {
	n := func(k int) *node { return server((i + k) % 3) }
	code, c := n(0).call("POST", "/v1/contacts", `{"name":"Contact `+strconv.Itoa(i)+`","channel":"web_form"}`)
	if code != http.StatusCreated {
		return fmt.Errorf("create contact: %d", code)
	}
	id := c["id"].(string)
	if code, _ := n(1).call("POST", "/v1/contacts/"+id+"/phase", `{"phase":"approach"}`); code != http.StatusOK {
		return fmt.Errorf("phase: %d", code)
	}
	code, d := n(2).call("POST", "/v1/deals", `{"contact_id":"`+id+`","title":"Plan","amount":5000,"currency":"JPY"}`)
	if code != http.StatusCreated {
		return fmt.Errorf("open deal: %d", code)
	}
	if i%2 == 0 {
		dealID := d["id"].(string)
		if code, _ := n(0).call("POST", "/v1/deals/"+dealID+"/win", `{}`); code != http.StatusOK {
			return fmt.Errorf("win: %d", code)
		}
		won.Store(id, dealID)
	}
	return nil
}

func mustProjections(t *testing.T, n *node) map[string]map[string]any {
	t.Helper()
	for range 100 {
		if ps, _ := n.projections(); ps != nil {
			return ps
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no projections from %s", n.addr)
	return nil
}

// ownerOf is the index of the server that applies projection name.
func ownerOf(t *testing.T, nodes []*node, name string) int {
	t.Helper()
	for range 200 {
		for i, n := range nodes {
			if mustProjections(t, n)[name]["role"] == "owner" {
				return i
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no server owns %s", name)
	return 0
}

// stallFeed holds a position of the log in a transaction left open while commands go on,
// until every server reports the feed stalled; meanwhile no server may report lag 0 for a
// projection whose checkpoint is below the store's head.
func stallFeed(t *testing.T, store string, nodes []*node, current func(int) *node) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(postgresURL())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := store[strings.LastIndex(store, "schema=")+len("schema="):]
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	// A writer that took a position and hangs before its commit.
	if _, err := tx.Exec(ctx, "SELECT pg_current_xact_id(), nextval('"+schema+".events_position_seq')"); err != nil {
		t.Fatal(err)
	}
	current(0).mustCall("POST", "/v1/contacts", `{"name":"behind the gap","channel":"web_form"}`)
	deadline := time.Now().Add(30 * time.Second)
	stalled := map[int]bool{}
	for len(stalled) < len(nodes) {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s only %d servers report the stalled feed", len(stalled))
		}
		for i := range nodes {
			ps, feed := current(i).projections()
			if ps == nil {
				continue
			}
			for name, p := range ps {
				lag := p["lag"].(map[string]any)["events"].(float64)
				if lag == 0 && p["checkpoint"].(float64) < feed["store_head"].(float64) {
					t.Errorf("server %d reports %s at lag 0 below the store's head: %v", i, name, p)
				}
			}
			if feed["stalled"] == true {
				seen := stalled[i] // the states of the answer before were read before the feed
				stalled[i] = true
				for name, p := range ps {
					if !seen {
						break
					}
					if p["state"] != "stalled" && p["lag"].(map[string]any)["events"].(float64) > 0 {
						t.Errorf("server %d: %s is %v while the feed is stalled", i, name, p["state"])
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	// While the feed stays stalled, no server is ready, and each names what it holds back.
	for i := range nodes {
		code, m := current(i).call("GET", "/readyz", "")
		detail, _ := m["detail"].(string)
		if code != http.StatusServiceUnavailable || !strings.Contains(detail, "stalled") || !strings.Contains(detail, "pipeline_board at ") {
			t.Errorf("server %d: /readyz with the feed stalled: %d %v", i, code, m)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
}

// converge waits until every projection of every server stands at the store's head, and
// returns it.
func converge(t testing.TB, nodes []*node) int64 {
	t.Helper()
	return convergeWithin(t, nodes, 90*time.Second)
}

// convergeWithin is converge with another deadline.
func convergeWithin(t testing.TB, nodes []*node, wait time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var head int64
		done := true
		for _, n := range nodes {
			ps, feed := n.projections()
			if ps == nil {
				done = false
				continue
			}
			head = max(head, int64(feed["store_head"].(float64)))
			for _, p := range ps {
				if int64(p["checkpoint"].(float64)) < head || p["lag"].(map[string]any)["events"].(float64) != 0 {
					done = false
				}
			}
		}
		if done && head > 0 {
			return head
		}
		if time.Now().After(deadline) {
			for _, n := range nodes {
				ps, feed := n.projections()
				t.Logf("%s: feed %v projections %v", n.addr, feed, ps)
			}
			logOldTransactions(t)
			t.Fatalf("the servers did not reach the store's head within %s", wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertSameAnswers asks every server the same questions at head: the data must be equal.
func assertSameAnswers(t *testing.T, nodes []*node, head int64) {
	t.Helper()
	min := "?min_position=" + strconv.FormatInt(head, 10)
	asOf := "&as_of=" + time.Now().UTC().Format(time.RFC3339) // answers about now differ by the moment asked
	paths := []string{"/v1/pipeline/board", "/v1/analytics/journey-map", "/v1/analytics/churn-points", "/v1/tasks",
		"/v1/contacts", "/v1/deals"}
	for _, path := range paths {
		var first any
		for i, n := range nodes {
			q := path + min
			if path != "/v1/contacts" && path != "/v1/deals" {
				q += asOf
			}
			ans := n.mustCall("GET", q, "")
			if f, ok := ans["freshness"].(map[string]any); ok && f["stale"] == true {
				t.Errorf("%s on server %d is stale at %d: %v", path, i, head, f)
			}
			data := ans["data"]
			if data == nil {
				data = ans
			}
			if i == 0 {
				first = data
			} else if !reflect.DeepEqual(first, data) {
				a, _ := json.Marshal(first)
				b, _ := json.Marshal(data)
				k := 0
				for k < len(a) && k < len(b) && a[k] == b[k] {
					k++
				}
				t.Errorf("%s differs between server 0 and server %d from byte %d:\n%.300s\n%.300s", path, i, k, a[max(0, k-100):], b[max(0, k-100):])
			}
		}
	}
}

// assertDealWonOnce checks that the contact of every won deal was moved to won once, by the
// deal-won process.
func assertDealWonOnce(t *testing.T, nodes []*node, won *sync.Map) {
	t.Helper()
	n := nodes[0]
	count := 0
	won.Range(func(contactID, _ any) bool {
		count++
		var moves int
		for _, e := range n.mustCall("GET", "/v1/contacts/"+contactID.(string)+"/history", "")["events"].([]any) {
			if e.(map[string]any)["actor"] == "process:deal_won" {
				moves++
			}
		}
		if moves != 1 {
			h, _ := json.Marshal(n.mustCall("GET", "/v1/contacts/"+contactID.(string)+"/history", "")["events"])
			t.Errorf("contact %s moved %d times by the deal-won process, want once: %.1500s", contactID, moves, h)
		}
		return true
	})
	if count == 0 {
		t.Error("no deal was won")
	}
	if t.Failed() {
		for _, n := range nodes {
			lost := 0
			for _, l := range strings.Split(n.logs.String(), "\n") {
				if strings.Contains(l, "Deal") || strings.Contains(l, "deal") {
					t.Log(l)
				}
				if strings.Contains(l, "Lease lost") {
					lost++
				}
			}
			t.Logf("%s: %d leases lost", n.addr, lost)
		}
	}
}

// waitDealWon waits until the contact of every won deal has been moved by the deal-won
// process (it reacts after the deal is won, on whichever server holds its lease).
func waitDealWon(t *testing.T, n *node, won *sync.Map) {
	t.Helper()
	// Generous: every feed of the PostgreSQL cluster waits for its oldest transaction, and
	// the machine is shared.
	deadline := time.Now().Add(90 * time.Second)
	won.Range(func(contactID, _ any) bool {
		for {
			for _, e := range n.mustCall("GET", "/v1/contacts/"+contactID.(string)+"/history", "")["events"].([]any) {
				if e.(map[string]any)["actor"] == "process:deal_won" {
					return true
				}
			}
			if time.Now().After(deadline) {
				t.Errorf("contact %s not moved by the deal-won process after 90s", contactID)
				return false
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// logOldTransactions logs the transactions of the PostgreSQL cluster that hold back the feed.
func logOldTransactions(t testing.TB) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, postgresURL())
	if err != nil {
		t.Log(err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT pid, coalesce(backend_xid::text, ''), coalesce(backend_xmin::text, ''),
		coalesce(extract(epoch FROM now() - xact_start), 0)::float8, coalesce(state, ''), left(query, 200)
		FROM pg_stat_activity WHERE backend_xid IS NOT NULL OR backend_xmin IS NOT NULL ORDER BY xact_start LIMIT 10`)
	if err != nil {
		t.Log(err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var (
			pid              int
			xid, xmin, state string
			age              float64
			query            string
		)
		if err := rows.Scan(&pid, &xid, &xmin, &age, &state, &query); err == nil {
			t.Logf("pid %d xid %s xmin %s open %.1fs %s: %s", pid, xid, xmin, age, state, query)
		}
	}
}

// assertOneAuditTrail checks that the servers are one audit identity: the same key, the same
// signed checkpoint (root, signature and timestamp), one access log in which a read made on
// one server is listed by another, and a checkpoint that `crm audit verify` accepts.
func assertOneAuditTrail(t *testing.T, nodes []*node, store, auditKey string) {
	t.Helper()
	data := func(m map[string]any) map[string]any {
		if d, ok := m["data"].(map[string]any); ok {
			return d
		}
		return m
	}
	var key, cp map[string]any
	for i, n := range nodes {
		k := data(n.mustCall("GET", "/v1/audit/key", ""))
		c := data(n.mustCall("GET", "/v1/audit/checkpoint", ""))
		if i == 0 {
			key, cp = k, c
			continue
		}
		if !reflect.DeepEqual(k, key) {
			t.Errorf("server %d has audit key %v, server 0 %v", i, k["key_id"], key["key_id"])
		}
		if !reflect.DeepEqual(c, cp) {
			t.Errorf("server %d signs checkpoint %v, server 0 %v", i, c, cp)
		}
	}
	// Every server lists the checkpoint reads made on each of them, on whichever page of the
	// access log they fall (the histories read above fill the first pages).
	for i, n := range nodes {
		reads := 0
		for after := int64(0); ; {
			page := data(n.mustCall("GET", "/v1/audit/access-log?limit=1000&after="+strconv.FormatInt(after, 10), ""))
			entries := page["entries"].([]any)
			for _, e := range entries {
				if e.(map[string]any)["path"] == "/v1/audit/checkpoint" {
					reads++
				}
			}
			// Each read of the access log is itself recorded: a short page is the last one.
			if len(entries) < 1000 {
				break
			}
			after = int64(page["next_after"].(float64))
		}
		if reads != len(nodes) {
			t.Errorf("server %d lists %d checkpoint reads, want one per server (%d)", i, reads, len(nodes))
		}
	}
	env := map[string]string{"CRM_STORE": store, "CRM_DATA_DIR": t.TempDir(), "CRM_AUDIT_KEY_FILE": auditKey}
	if _, stderr, err := crm(t, env, "audit", "access-log"); err != nil || !strings.Contains(stderr, "chain intact") {
		t.Errorf("crm audit access-log: %v %s", err, stderr)
	}
	cpFile := filepath.Join(t.TempDir(), "cp.json")
	b, _ := json.Marshal(cp)
	if err := os.WriteFile(cpFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := crm(t, env, "audit", "verify", "--checkpoint", cpFile, "--quiet"); err != nil || !strings.Contains(out, "OK:") {
		t.Errorf("crm audit verify of the servers' checkpoint: %v\n%s", err, out)
	}
	// A signer with a key of its own is refused: it would sign other checkpoints.
	env["CRM_AUDIT_KEY_FILE"] = filepath.Join(t.TempDir(), "other.key")
	if _, _, err := crm(t, env, "audit", "checkpoint"); err == nil || !strings.Contains(err.Error(), "signed by another key") {
		t.Errorf("crm audit checkpoint with another key: %v", err)
	}
}
