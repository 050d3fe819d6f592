package projectiontest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eventcrm/crm/projections"
)

// CPUTime is the CPU time this process used so far, user and system (not PostgreSQL's).
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// AppURL is url with the sessions it opens named app (application_name), for PgCPU.
func AppURL(url, app string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "application_name=" + app
}

// PgCPU follows the CPU time of the PostgreSQL server processes of the sessions named app
// (pg_stat_activity.application_name), read from /proc: the server runs on this machine.
// Where it does not, the figure stays 0.
type PgCPU struct {
	done  chan struct{}
	wg    sync.WaitGroup
	first map[int]time.Duration // CPU of each process when first seen
	last  map[int]time.Duration
}

// SamplePgCPU samples every 250 ms, until Stop, the server processes of app's sessions, read
// through db: sessions opened meanwhile count from 0, those open before from their CPU then;
// one closed between two samples loses at most its last 250 ms.
func SamplePgCPU(db *projections.DB, app string) *PgCPU {
	s := &PgCPU{done: make(chan struct{}), first: map[int]time.Duration{}, last: map[int]time.Duration{}}
	conn, err := db.SQL.Conn(context.Background())
	if err != nil {
		close(s.done)
		return s
	}
	s.sample(conn, app, true)
	s.wg.Go(func() {
		defer conn.Close()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.done:
				s.sample(conn, app, false)
				return
			case <-tick.C:
				s.sample(conn, app, false)
			}
		}
	})
	return s
}

func (s *PgCPU) sample(conn *sql.Conn, app string, start bool) {
	rows, err := conn.QueryContext(context.Background(), `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app)
	if err != nil {
		return
	}
	var pids []int
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) == nil {
			pids = append(pids, pid)
		}
	}
	rows.Close()
	for _, pid := range pids {
		cpu, ok := procCPU(pid)
		if !ok {
			continue
		}
		if _, seen := s.first[pid]; !seen {
			s.first[pid] = 0
			if start {
				s.first[pid] = cpu
			}
		}
		s.last[pid] = cpu
	}
}

// Stop ends the sampling and returns the CPU time the processes used since it began.
func (s *PgCPU) Stop() time.Duration {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.wg.Wait()
	var total time.Duration
	for pid, cpu := range s.last {
		total += cpu - s.first[pid]
	}
	return total
}

// procCPU is the user and system CPU time of process pid (Linux, /proc/<pid>/stat).
func procCPU(pid int) (time.Duration, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The fields after the command (in parentheses, which may hold spaces): utime and stime
	// are the 12th and 13th, in clock ticks (100 a second on Linux).
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}
