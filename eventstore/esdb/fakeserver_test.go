package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// fakeServer is an in-process stand-in for the streams service of EventStoreDB, close enough
// to run the real client and this package against it with no EventStoreDB at hand. It follows
// the server behaviours the store relies on, as read in EventStoreDB's source:
//   - $all positions are byte offsets of records: not dense, commit == prepare for every event
//     of a gRPC append, and the log starts after other records (never at 0);
//   - a forward $all read includes the record at its start position, a backward one starts
//     before it, and a read or subscription from inside a record fails;
//   - a catch-up subscription to $all starts after its position and applies the event type
//     filter;
//   - appends check the expected revision, answer the last event's position and revision;
//   - stream reads report $all positions (servers 22.6 and later);
//   - system records ($-prefixed types in $-prefixed streams) are interleaved in $all.
//
// It is a test double, not a model of the server: no idempotent writes, no deletes, no
// transactions, no security.
type fakeServer struct {
	api.UnimplementedStreamsServer

	mu      sync.Mutex
	log     []fakeRecord
	streams map[string][]int // indexes into log, by revision
	end     uint64           // position after the last record
	appends int
	changed chan struct{} // closed when records are added

	grpc *grpc.Server
	addr string
}

type fakeRecord struct {
	pos    uint64
	stream string
	rev    uint64
	id     *shared.UUID
	meta   map[string]string
	custom []byte
	data   []byte
}

// startFakeServer serves on addr ("127.0.0.1:0" for any port) until the test ends.
func startFakeServer(t *testing.T, addr string) *fakeServer {
	t.Helper()
	f := &fakeServer{streams: make(map[string][]int), end: 4096, changed: make(chan struct{})}
	f.serve(t, addr)
	return f
}

func (f *fakeServer) serve(t *testing.T, addr string) {
	t.Helper()
	var lis net.Listener
	var err error
	for range 50 { // a port just released may take a moment to be free again
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("fake server: listen: %v", err)
	}
	f.addr = lis.Addr().String()
	// The client pings every 10s even without calls, as EventStoreDB allows.
	f.grpc = grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
		MinTime: time.Second, PermitWithoutStream: true,
	}))
	api.RegisterStreamsServer(f.grpc, f)
	go func() { _ = f.grpc.Serve(lis) }()
	t.Cleanup(f.grpc.Stop)
}

// restart stops serving, drops every connection, and serves the same data on the same
// address after down.
func (f *fakeServer) restart(t *testing.T, down time.Duration) {
	t.Helper()
	f.grpc.Stop()
	time.Sleep(down)
	f.serve(t, f.addr)
}

func (f *fakeServer) url() string { return "esdb://" + f.addr + "?tls=false" }

// add appends a record; the caller holds mu.
func (f *fakeServer) add(stream string, id *shared.UUID, meta map[string]string, custom, data []byte) fakeRecord {
	meta = maps(meta)
	meta["created"] = strconv.FormatInt(time.Now().UnixNano()/100, 10)
	r := fakeRecord{pos: f.end, stream: stream, rev: uint64(len(f.streams[stream])), id: id, meta: meta, custom: custom, data: data}
	f.streams[stream] = append(f.streams[stream], len(f.log))
	f.log = append(f.log, r)
	f.end += 128 + uint64(len(data)+len(custom))
	return r
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (f *fakeServer) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeServer) Append(srv api.Streams_AppendServer) error {
	first, err := srv.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "append without options")
	}
	var msgs []*api.AppendReq_ProposedMessage
	for {
		req, err := srv.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		msgs = append(msgs, req.GetProposedMessage())
	}
	stream := string(opts.GetStreamIdentifier().GetStreamName())

	f.mu.Lock()
	defer f.mu.Unlock()
	revs := f.streams[stream]
	ok := true
	switch e := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_NoStream:
		ok = len(revs) == 0
	case *api.AppendReq_Options_StreamExists:
		ok = len(revs) > 0
	case *api.AppendReq_Options_Revision:
		ok = len(revs) > 0 && uint64(len(revs)-1) == e.Revision
	}
	if !ok {
		wrong := &api.AppendResp_WrongExpectedVersion{}
		if len(revs) == 0 {
			wrong.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
		} else {
			wrong.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(len(revs) - 1)}
		}
		return srv.SendAndClose(&api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: wrong}})
	}
	var last fakeRecord
	for _, m := range msgs {
		last = f.add(stream, m.GetId(), m.GetMetadata(), m.GetCustomMetadata(), m.GetData())
	}
	if f.appends++; f.appends%3 == 0 {
		f.add("$stats-127.0.0.1:2113", &shared.UUID{Value: &shared.UUID_String_{String_: "00000000-0000-0000-0000-000000000001"}},
			map[string]string{"type": "$statsCollected", "content-type": "application/json"}, nil, []byte(`{}`))
	}
	f.notify()
	return srv.SendAndClose(&api.AppendResp{Result: &api.AppendResp_Success_{Success: &api.AppendResp_Success{
		CurrentRevisionOption: &api.AppendResp_Success_CurrentRevision{CurrentRevision: last.rev},
		PositionOption: &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
			CommitPosition: last.pos, PreparePosition: last.pos,
		}},
	}}})
}

func (f *fakeServer) Read(req *api.ReadReq, srv api.Streams_ReadServer) error {
	opts := req.GetOptions()
	if _, sub := opts.GetCountOption().(*api.ReadReq_Options_Subscription); sub {
		return f.subscribe(opts, srv)
	}
	count := opts.GetCount()
	backwards := opts.GetReadDirection() == api.ReadReq_Options_Backwards
	f.mu.Lock()
	records, err := f.read(opts, backwards, count)
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if records == nil && opts.GetStream() != nil {
		return srv.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: opts.GetStream().GetStreamIdentifier(),
		}}})
	}
	for _, r := range records {
		if err := srv.Send(readEvent(r)); err != nil {
			return err
		}
	}
	return nil
}

// read returns the records a read asks for; nil for a missing stream. The caller holds mu.
func (f *fakeServer) read(opts *api.ReadReq_Options, backwards bool, count uint64) ([]fakeRecord, error) {
	var idx []int
	if s := opts.GetStream(); s != nil {
		revs, ok := f.streams[string(s.GetStreamIdentifier().GetStreamName())]
		if !ok {
			return nil, nil
		}
		idx = f.streamIndexes(revs, s, backwards)
	} else {
		var err error
		if idx, err = f.allIndexes(opts.GetAll(), backwards); err != nil {
			return nil, err
		}
	}
	out := []fakeRecord{}
	for _, i := range idx {
		if uint64(len(out)) >= count {
			break
		}
		out = append(out, f.log[i])
	}
	return out, nil
}

func (f *fakeServer) streamIndexes(revs []int, s *api.ReadReq_Options_StreamOptions, backwards bool) []int {
	from := 0
	switch o := s.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_End:
		from = len(revs) - 1
	case *api.ReadReq_Options_StreamOptions_Revision:
		from = int(min(o.Revision, uint64(len(revs))))
		if backwards && from == len(revs) {
			from--
		}
	}
	if !backwards {
		return revs[from:]
	}
	idx := slices.Clone(revs[:from+1])
	slices.Reverse(idx)
	return idx
}

// allIndexes returns the $all records from a position, in read order.
func (f *fakeServer) allIndexes(a *api.ReadReq_Options_AllOptions, backwards bool) ([]int, error) {
	all := make([]int, len(f.log))
	for i := range all {
		all[i] = i
	}
	var start int // forward: first index; backward: one past the first index
	switch o := a.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		start = 0
	case *api.ReadReq_Options_AllOptions_End:
		start = len(f.log)
	case *api.ReadReq_Options_AllOptions_Position:
		i, err := f.recordAt(o.Position.GetCommitPosition(), o.Position.GetPreparePosition())
		if err != nil {
			return nil, err
		}
		start = i
	}
	if !backwards {
		return all[start:], nil
	}
	idx := all[:start]
	slices.Reverse(idx)
	return idx, nil
}

// recordAt returns the index of the record at pos, or len(log) at or past the end. A position
// inside a record is an error, as EventStoreDB's chunk reader reports it.
func (f *fakeServer) recordAt(commit, prepare uint64) (int, error) {
	if commit != prepare {
		return 0, status.Error(codes.InvalidArgument, "commit and prepare positions differ")
	}
	if commit >= f.end {
		return len(f.log), nil
	}
	i, found := slices.BinarySearchFunc(f.log, commit, func(r fakeRecord, p uint64) int {
		switch {
		case r.pos < p:
			return -1
		case r.pos > p:
			return 1
		}
		return 0
	})
	if !found {
		return 0, status.Errorf(codes.Unknown, "Log record at actual pos %d has too large length", commit)
	}
	return i, nil
}

func (f *fakeServer) subscribe(opts *api.ReadReq_Options, srv api.Streams_ReadServer) error {
	if opts.GetAll() == nil {
		return status.Error(codes.Unimplemented, "fake server: only $all subscriptions")
	}
	var filter *regexp.Regexp
	if fo := opts.GetFilter(); fo != nil {
		filter = regexp.MustCompile(fo.GetEventType().GetRegex())
	}
	f.mu.Lock()
	next := 0
	switch o := opts.GetAll().GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_End:
		next = len(f.log)
	case *api.ReadReq_Options_AllOptions_Position:
		i, err := f.recordAt(o.Position.GetCommitPosition(), o.Position.GetPreparePosition())
		if err != nil {
			f.mu.Unlock()
			return err
		}
		next = i + 1 // a subscription starts after its position
	}
	f.mu.Unlock()
	if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{
		Confirmation: &api.ReadResp_SubscriptionConfirmation{SubscriptionId: "fake"},
	}}); err != nil {
		return err
	}
	for {
		f.mu.Lock()
		records := slices.Clone(f.log[min(next, len(f.log)):])
		changed := f.changed
		f.mu.Unlock()
		for _, r := range records {
			next++
			if filter != nil && !filter.MatchString(r.meta["type"]) {
				continue
			}
			if err := srv.Send(readEvent(r)); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-srv.Context().Done():
			return srv.Context().Err()
		}
	}
}

func readEvent(r fakeRecord) *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               r.id,
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.rev,
			PreparePosition:  r.pos,
			CommitPosition:   r.pos,
			Metadata:         r.meta,
			CustomMetadata:   r.custom,
			Data:             r.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.pos},
	}}}
}

// records returns the number of records of a stream, for assertions.
func (f *fakeServer) records(stream string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.streams[stream])
}

func (f *fakeServer) String() string { return fmt.Sprintf("fake EventStoreDB at %s", f.addr) }

// newFakeStore opens a Store on a fake server.
func newFakeStore(t *testing.T, f *fakeServer, opts ...Option) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, f.url(), opts...)
	if err != nil {
		t.Fatalf("open %v: %v", f, err)
	}
	return s
}
