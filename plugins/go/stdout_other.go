//go:build !unix

package sdk

// redirectStdout does nothing where there is no dup2.
func redirectStdout() error { return nil }
