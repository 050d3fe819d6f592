package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/eventcrm/crm/cmd/crm/internal/config"
)

// BenchmarkConsoleBoard measures the time to a usable board in headless Chromium over the
// history of BenchmarkReadModelQueries (100,000 deals, built once and kept), served on the
// loopback listener by `crm serve`'s stack: each iteration loads the console's page afresh
// (an empty cache, signed in) and reports
//
//   - fcp-ms: the page's first contentful paint;
//   - board-ms: from the start of navigation until the board's data is on the page;
//   - api-board-ms: the same GET /v1/pipeline/board?limit=50 sent from Go in the same run,
//     the floor the page cannot beat (board-ms / api-board-ms is the page's own cost);
//   - first-page-bytes: what the first page transferred on the first load, with an empty
//     cache (HTML, scripts, style, data, headers);
//   - first-page-assets-bytes: the page's files alone on that load, compressed as sent.
func BenchmarkConsoleBoard(b *testing.B) {
	dir := queryDataset(b)
	s, stop := newBenchServer(b, config.Config{DataDir: copyFiles(b, dir, "crm.db", "crm.db-wal", "readmodels.db", "readmodels.db-wal")})
	defer stop()
	if _, err := s.do("GET", "/v1/pipeline/board?limit=50", nil); err != nil {
		b.Fatal(err)
	}
	browser := benchBrowser(b)

	var fcp, board, apiBoard, bytes, assetBytes float64
	for i := 0; i < b.N; i++ {
		tab, cancel := chromedp.NewContext(browser)
		if err := chromedp.Do(tab, chromedp.Navigate(s.url+"/console/echarts-NOTICE.txt"),
			chromedp.Evaluate[chromedp.Void](`sessionStorage.setItem('crm.token', `+jsString(s.token)+`)`)); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := s.do("GET", "/v1/pipeline/board?limit=50", nil); err != nil {
			b.Fatal(err)
		}
		apiBoard += float64(time.Since(start).Microseconds()) / 1000
		ctx, timeout := context.WithTimeout(tab, 2*time.Minute)
		if err := chromedp.Do(ctx, chromedp.Navigate(s.url+"/#/board"), chromedp.WaitVisible(chromedp.CSS(`main[data-page="board"]`))); err != nil {
			b.Fatal(err)
		}
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](`({
			fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || 0,
			board: performance.getEntriesByName('crm:board:shown')[0].startTime,
			bytes: performance.getEntriesByType('navigation')[0].transferSize + performance.getEntriesByType('resource').reduce((n, r) => n + r.transferSize, 0),
			assets: performance.getEntriesByType('navigation')[0].transferSize + performance.getEntriesByType('resource').filter(r => r.name.includes('/console/')).reduce((n, r) => n + r.transferSize, 0),
		})`))
		timeout()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		var m struct{ FCP, Board, Bytes, Assets float64 }
		if err := json.Unmarshal(raw, &m); err != nil {
			b.Fatal(err)
		}
		fcp += m.FCP
		board += m.Board
		if i == 0 { // the first load, with an empty cache; later ones revalidate (304)
			bytes, assetBytes = m.Bytes, m.Assets
		}
	}
	n := float64(b.N)
	b.ReportMetric(fcp/n, "fcp-ms")
	b.ReportMetric(board/n, "board-ms")
	b.ReportMetric(apiBoard/n, "api-board-ms")
	b.ReportMetric(bytes, "first-page-bytes")
	b.ReportMetric(assetBytes, "first-page-assets-bytes")
}

func jsString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// benchBrowser starts headless Chromium with a fresh profile (the browser tests' flags).
func benchBrowser(b *testing.B) context.Context {
	b.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if _, statErr := os.Stat("/usr/bin/chromium"); statErr != nil {
			b.Fatal("no Chromium: run .ci/ensure-browser")
		}
		path = "/usr/bin/chromium"
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(b.TempDir()), chromedp.WindowSize(1440, 1000))
	ctx, cancel := chromedp.NewContext(actx)
	b.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		b.Fatalf("start Chromium: %v", err)
	}
	return ctx
}
