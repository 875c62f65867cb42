package repo

// The backends a location string can name register themselves with
// package backend.
import (
	_ "github.com/stillpoint/stillpoint/internal/repo/backend/local"
	_ "github.com/stillpoint/stillpoint/internal/repo/backend/s3"
)
