package admin_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// Hold with ScalarDB Server targets beside a Stillpoint server: with
// CheckPaused proof allowed, targets that have CheckPaused get a window
// (no renewal is sent to them, and the Stillpoint server keeps its renewed
// lease); one without CheckPaused, or without the allowance, gets none, and
// a ScalarDB target found open at the end voids the window. Every target is
// unpaused either way.
func TestHoldScalarDBTargets(t *testing.T) {
	tests := []struct {
		name    string
		era     testenv.ScalarDBEra
		allow   bool
		unpause bool   // the ScalarDB target is unpaused during the hold
		wantErr string // "" = a valid window
	}{
		{"3.9 to 3.13 (no Stats), allowed", testenv.ScalarDB39, true, false, ""},
		{"3.6 to 3.8 (Stats {}), allowed", testenv.ScalarDB36, true, false, ""},
		{"3.4, 3.5 (no CheckPaused), allowed", testenv.ScalarDB34, true, false, "has no CheckPaused (ScalarDB Server 3.4 or 3.5?)"},
		{"3.9 to 3.13, not allowed", testenv.ScalarDB39, false, false, "reports no pause_id"},
		{"3.6 to 3.8, not allowed", testenv.ScalarDB36, false, false, "reports no pause_id"},
		{"3.9 to 3.13, unpaused during the hold", testenv.ScalarDB39, true, true, "no longer paused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sdbAddr, sdb := testenv.ScalarDBAdminServer(t, tt.era)
			// A lease shorter than the hold: the Stillpoint server stays
			// paused only if its renewals still go out.
			spAddr, gate := testenv.AdminServer(t, admin.GateOptions{Lease: 300 * time.Millisecond})
			f, err := admin.NewFleet([]string{spAddr, sdbAddr}, admin.DialOptions{}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if tt.allow {
				f.AllowCheckPausedProof()
			}
			ctx := context.Background()
			p, err := f.PauseAll(ctx, true, 0)
			if err != nil {
				t.Fatal(err)
			}
			held := admin.HoldFor(800 * time.Millisecond)
			work := func(ctx context.Context) error {
				if err := held(ctx); err != nil || !tt.unpause {
					return err
				}
				_, err := sdb.Unpause(ctx, &emptypb.Empty{})
				return err
			}
			w, err := f.Hold(ctx, p, 50*time.Millisecond, work)
			var iw *admin.InvalidWindowError
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Hold: %v; want a window", err)
			case tt.wantErr == "" && w.End.Sub(w.Start) < 800*time.Millisecond:
				t.Errorf("window %v..%v is shorter than the hold", w.Start, w.End)
			case tt.wantErr != "" && (!errors.As(err, &iw) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), sdbAddr)):
				t.Fatalf("Hold: %v; want an invalid window naming %s and saying %q", err, sdbAddr, tt.wantErr)
			}
			if n := sdb.Pauses(); n != 1 {
				t.Errorf("the ScalarDB target got %d Pause calls, want 1: it has no lease to renew, and a renewal would hide an unpause", n)
			}
			if sdb.Paused() || gate.Paused() {
				t.Errorf("after Hold: ScalarDB target paused=%v, Stillpoint server paused=%v; want both unpaused", sdb.Paused(), gate.Paused())
			}
			if st := gate.Stats(); tt.wantErr == "" && (st.LeaseExpiries != 0 || st.Pauses != 1) {
				t.Errorf("the Stillpoint server: %d lease expiries, %d pauses; want its lease renewed through the hold", st.LeaseExpiries, st.Pauses)
			}
		})
	}
}
