package caddymodule

import "time"

// SetBackendJWTClockShift moves the backend JWT clock by d from real time
// (0 restores it), so tests rotate keys without waiting.
func SetBackendJWTClockShift(d time.Duration) { backendJWTClockShift.Store(int64(d)) }

// BackendJWTNow is the backend JWT clock.
func BackendJWTNow() time.Time { return backendJWTNow() }
