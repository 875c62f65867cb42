package main

import (
	"os"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
)

// newProgress returns a progress bar on stderr counting unit (rows,
// chunks...) with its rate and, when max is known, a percentage and the
// time left; or nil when stderr is not a terminal or output is JSON: logs
// and scripts get no control characters, unless --progress asks for them.
func (g *globals) newProgress(max int64, description, unit string) *progressbar.ProgressBar {
	if g.json || !(g.progress || isatty.IsTerminal(os.Stderr.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(unit),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100_000_000),
	)
}
