// containerd-update: what `ctr` 1.6 lacks, the task service's Update, as CRI's
// UpdateContainerResources calls it: the shim then runs the runtime's
// `update --resources -`. Test code for proxcage's end-to-end tests.
//
// Usage: containerd-update SOCKET NAMESPACE ID MEMORY_BYTES CPU_QUOTA CPU_PERIOD
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "containerd-update: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 6 {
		return fmt.Errorf("usage: containerd-update SOCKET NAMESPACE ID MEMORY_BYTES CPU_QUOTA CPU_PERIOD")
	}
	memory, err := strconv.ParseInt(args[3], 10, 64)
	if err != nil {
		return err
	}
	quota, err := strconv.ParseInt(args[4], 10, 64)
	if err != nil {
		return err
	}
	period, err := strconv.ParseUint(args[5], 10, 64)
	if err != nil {
		return err
	}
	client, err := containerd.New(args[0])
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := namespaces.WithNamespace(context.Background(), args[1])
	container, err := client.LoadContainer(ctx, args[2])
	if err != nil {
		return err
	}
	task, err := container.Task(ctx, nil)
	if err != nil {
		return err
	}
	resources := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &memory},
		CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period},
	}
	return task.Update(ctx, containerd.WithResources(resources))
}
