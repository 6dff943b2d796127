"""Output writer of the pool-based depthwise conv (NCRISC / NoC1).

The output CB is globally allocated on the sharded output tensor, so the packer already writes
every stick in place; the writer delivers the output by consuming it as it is produced (one
32-stick tile row, or one stick for row-major output) so the shard is complete, in order, when
the kernel ends. It is the op's last consumer and the one that would forward the output in a
fused graph.
"""

from __future__ import annotations

from ttsim.kernel_api import DataflowContext


def writer_sharded_output(ctx: DataflowContext):
    out_cb = ctx.get_compile_time_arg_val("out_cb_id")
    pages_per_group = ctx.get_compile_time_arg_val("pages_per_group")
    num_groups = ctx.get_arg_val("num_groups")
    for _ in range(num_groups):
        yield from ctx.cb_wait_front(out_cb, pages_per_group)
        ctx.cb_pop_front(out_cb, pages_per_group)
