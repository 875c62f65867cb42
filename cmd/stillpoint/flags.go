package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/pflag"
)

// Numeric flags check their bounds when parsed, so a bad value is a usage
// error (exit 2) naming the flag, whichever command has it.

// intFlag is an int flag with a lower bound.
type intFlag struct {
	p   *int
	min int
}

// intAtLeast defines an int flag that refuses values below min.
func intAtLeast(fs *pflag.FlagSet, p *int, name string, value, min int, usage string) {
	*p = value
	fs.Var(&intFlag{p, min}, name, usage)
}

func (f *intFlag) String() string { return strconv.Itoa(*f.p) }
func (f *intFlag) Type() string   { return "int" }
func (f *intFlag) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("not a whole number")
	}
	if v < f.min {
		return fmt.Errorf("must be at least %d", f.min)
	}
	*f.p = v
	return nil
}

// durationFlag is a duration flag with a lower bound, and a default that
// may be described in words instead of printed as a duration.
type durationFlag struct {
	p        *time.Duration
	min      time.Duration
	positive bool // min is exclusive
}

// durationAtLeast defines a duration flag that refuses values below min
// (or, with positive, not above zero).
func durationAtLeast(fs *pflag.FlagSet, p *time.Duration, name string, value, min time.Duration, usage string) *pflag.Flag {
	*p = value
	fs.Var(&durationFlag{p: p, min: min}, name, usage)
	return fs.Lookup(name)
}

// durationPositive defines a duration flag that must be above zero.
func durationPositive(fs *pflag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var(&durationFlag{p: p, positive: true}, name, usage)
}

func (f *durationFlag) String() string { return f.p.String() }
func (f *durationFlag) Type() string   { return "duration" }
func (f *durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration (e.g. 30s, 5m, 1h30m)")
	}
	switch {
	case f.positive && v <= 0:
		return fmt.Errorf("must be above zero")
	case !f.positive && v < f.min:
		return fmt.Errorf("must be at least %v", f.min)
	}
	*f.p = v
	return nil
}
