"""Turns the raw lines of bench/compare.sh into its markdown results table.

  python3 bench/report.py RAW.log [MORE.log...] OUT.md   writes the results file
                                                   (figures of later logs join the table)
  python3 bench/report.py --docs DOC.md OUT.md     copies OUT.md's content into
                                                   DOC.md under "## Latest comparison"

Raw lines look like "key: 123.4 unit [min..max, n=R]  notes"; every figure in
the table is one of them (nothing is computed but ratios and percentages).
"""
import re
import sys

LINE = re.compile(r"^([a-z0-9_]+): (-?[0-9.]+) (\S+)(.*)$")
NOTRUN = re.compile(r"^([a-z0-9_]+): (not run|timed out|failed)(.*)$")


def parse(path):
    figs, notes, meta = {}, {}, {}
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("# ") and ":" in line:
            k, v = line[2:].split(":", 1)
            meta[k.strip()] = v.strip()
            continue
        m = LINE.match(line)
        if m:
            figs[m.group(1)] = (float(m.group(2)), m.group(3), m.group(4).strip())
            continue
        m = NOTRUN.match(line)
        if m:
            notes[m.group(1)] = m.group(2) + m.group(3)
    return figs, notes, meta


def fmt(v, unit):
    if v is None:
        return None
    if unit in ("/s", "jobs/s"):
        s = f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"
    elif unit == "ms":
        s = f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"
    elif unit == "s":
        s = f"{v:,.2f}" if v < 10 else f"{v:,.1f}"
    else:
        s = f"{v:,.0f}"
    return f"{s} {unit}"


def spread(f):
    m = re.search(r"\[([-0-9.]+)\.\.([-0-9.]+), n=(\d+)\]", f[2])
    if m and int(m.group(3)) > 1:
        return f" ({fmt(float(m.group(1)), f[1]).split()[0]}–{fmt(float(m.group(2)), f[1]).split()[0]})"
    return ""


def main():
    if sys.argv[1] == "--docs":
        docs(sys.argv[2], sys.argv[3])
        return
    raws, out = sys.argv[1:-1], sys.argv[-1]
    raw = raws[0]
    figs, notes, meta = parse(raw)
    later = []
    for extra in raws[1:]:  # e.g. a scale run made on its own: its figures join the table
        f2, n2, m2 = parse(extra)
        figs.update(f2)
        for k in f2:
            notes.pop(k, None)
        notes.update(n2)
        m = dict(kv.split("=", 1) for kv in m2.get("machine", "").split("; ") if "=" in kv)
        later.append(f"{extra.split('/')[-1][:-4]} (load average {m.get('loadavg_at_start', '?')} "
                     f"at its start, {m2.get('loadavg_at_end', '?')} at its end"
                     + (f", {m2['steal_pct']} % of the CPU time stolen by the hypervisor"
                        if 'steal_pct' in m2 else "") + ") for "
                     + ", ".join(sorted({k.split('_')[0] for k in f2})) + " figures")

    def get(k):
        return figs.get(k)

    def cell(k):
        f = get(k)
        if not f:
            return notes.get(k, "not run") if k else "—"
        return fmt(f[0], f[1]) + spread(f)

    rows = []

    def row(scenario, dk, pk=None, peer_name="", target=None, higher=True, peer_note=None):
        d, p = get(dk), get(pk) if pk else None
        dcell = cell(dk)
        if pk:
            pcell = (cell(pk) + f" ({peer_name})") if p else (
                f"{peer_name}: " + notes.get(pk, "not run"))
        else:
            pcell = peer_note or "—"
        ratio = "—"
        if d and p and p[0] > 0:
            r = d[0] / p[0]
            # Two significant digits below 0.1 (a latency 300x lower is 0.0031x, not 0.00x).
            ratio = f"{r:.2g}x" if r < 0.1 else f"{r:.2f}x" if r < 10 else f"{r:.0f}x"
        tcell, met = "—", "—"
        if target is not None:
            op, tv, tunit = target
            tcell = f"{op} {tv:,g} {tunit}"
            if d:
                ok = d[0] >= tv if op == "≥" else d[0] <= tv
                met = "yes" if ok else "**no**"
        rows.append((scenario, dcell, pcell, ratio, tcell, met))

    def derived(scenario, value, unit, target=None, note="", peer="—"):
        if value is None:
            rows.append((scenario, "not run", peer, "—", "—", "—"))
            return
        tcell, met = "—", "—"
        if target is not None:
            op, tv, tu = target
            tcell = f"{op} {tv:,g} {tu}"
            met = "yes" if (value >= tv if op == "≥" else value <= tv) else "**no**"
        rows.append((scenario, f"{value:,.2f} {unit}{note}", peer, "—", tcell, met))

    conns = sorted({int(k[len("submit_c"):]) for k in figs if re.fullmatch(r"submit_c\d+", k)})
    for c in conns:
        pk = f"slurm_sbatch_rate_{c}" if c in (1, 8) else None
        label = f"1. SubmitJob, durable, {c} connection{'s' if c > 1 else ''}"
        if pk:
            label += (" (Slurm: `sbatch -H`, one submitter)" if c == 1
                      else f" (Slurm: `sbatch -H`, {c} submitters in parallel)")
        row(label,
            f"submit_c{c}", pk, "Slurm", (("≥", 20000, "/s") if c == 32 else None))
    for t in (1, 8):
        row(f"1. SubmitJob via boto3, {t} thread{'s' if t > 1 else ''} (same script for both)",
            f"drover_boto3_submit_t{t}", f"moto_boto3_submit_t{t}", "moto")
    row("1. DescribeJobs of 100 ids, p50", "describe100_p50", target=("≤", 2, "ms"))
    lk = next((k for k in figs if re.fullmatch(r"list\d+", k)), "list10000")
    row(f"1. ListJobs of a {lk[4:]}-job queue, all pages (1,000 per page)", lk)
    dk = next((k for k in figs if re.fullmatch(r"dispatch\d+", k)), "dispatch10000")
    sk = next((k for k in figs if re.fullmatch(r"slurm_drain_\d+", k)), "slurm_drain_")
    row(f"2. Dispatch: {dk[8:]} jobs of `true`, submit → all SUCCEEDED (Slurm: {sk[12:] or '?'} `sbatch --wrap=true`)",
        dk, sk, "Slurm")
    row("2. Floor: posix_spawn(/bin/true) + waitpid, one worker per CPU", "spawn_floor_posix_spawn")
    row("2. Floor: fork + exec + waitpid", "spawn_floor_fork_exec")
    row("2. Floor: fork + exec + waitpid in a fresh cgroup per process", "spawn_floor_cgroup")
    row("2. Floor: a cgroup made once per worker, the child born in it (v2) and joining it (v1), exec, waitpid (as Drover's supervisor)",
        "spawn_floor_cgroup_pooled")
    d, f = get(dk), get("spawn_floor_posix_spawn")
    paired = get("dispatch_vs_floor_paired")
    if paired:  # (since 2026-11-23 04:00 UTC; a results file from before has the row below only)
        row("2. Floor: posix_spawn, measured right before each dispatch burst",
            "dispatch_floor_paired")
        derived("2. Dispatch ÷ posix_spawn floor measured right before each burst (median of the bursts)",
                paired[0], "%", ("≥", 60, "%"), note=spread(paired))
    derived("2. Dispatch ÷ posix_spawn floor" + (" measured after the other scenarios" if paired else ""),
            100 * d[0] / f[0] if d and f else None, "%", None if paired else ("≥", 60, "%"))
    fc = get("spawn_floor_cgroup")
    derived("2. Dispatch ÷ cgroup floor", 100 * d[0] / fc[0] if d and fc else None, "%")
    fp = get("spawn_floor_cgroup_pooled")
    derived("2. Dispatch ÷ pooled-cgroup floor", 100 * d[0] / fp[0] if d and fp else None, "%")
    row("3. Idle host: SubmitJob → RUNNING p50 (server's createdAt → startedAt)",
        "latency_running_p50", target=("≤", 5, "ms"))
    row("3. Idle host: SubmitJob → RUNNING p99", "latency_running_p99", target=("≤", 20, "ms"))
    row("3. Idle host: SubmitJob → SUCCEEDED p50", "latency_succeeded_p50")
    row("3. Idle host: SubmitJob → SUCCEEDED p99", "latency_succeeded_p99")
    row("3. Idle host: submit call → job's own start, p50 (Slurm: `sbatch` invoked → job's first timestamp)",
        "latency_sent_to_start_p50", "slurm_latency_start_p50", "Slurm")
    row("3. Idle host: submit call → job's own start, p99", "latency_sent_to_start_p99",
        "slurm_latency_start_p99", "Slurm")
    ak = next((k[:-len("_submit")] for k in figs if re.fullmatch(r"array\d+_submit", k)), "array10000")
    sak = next((k[:-len("_submit")] for k in figs if re.fullmatch(r"slurm_array\d+_submit", k)),
               "slurm_array10000")
    row(f"4. {ak[5:]}-child array: SubmitJob latency", f"{ak}_submit", f"{sak}_submit", "Slurm",
        ("≤", 50, "ms"))
    row(f"4. {ak[5:]}-child array: until every child is RUNNABLE", f"{ak}_all_runnable",
        peer_note="n/a (Slurm keeps pending tasks in one record)")
    row(f"4. {ak[5:]}-child array: drain (until all SUCCEEDED)", f"{ak}_drain", f"{sak}_drain",
        "Slurm")
    depth = meta.get("config", "")
    m = re.search(r"scale_depth=(\d+)", depth)
    n = f"{int(m.group(1)):,}" if m else "1,000,000"
    row(f"5. {n} queued: server RSS", "deep_rss", target=("≤", 1024, "MiB"))
    row("5. Server RSS before filling (after the empty-queue SubmitJob runs)", "empty_rss")
    row(f"5. Filling to {n} (SubmitJob, 32 connections, incl. retried 429s)", "deep_fill")
    row("5. SubmitJob, 32 connections, empty queue", "empty_submit_c32")
    row(f"5. SubmitJob, 32 connections, {n} queued", "deep_submit_c32")
    e, dd = get("empty_submit_c32"), get("deep_submit_c32")
    # (Since 2026-11-23 04:30 UTC: runs alternating between the deep server and a
    # second, empty one, the ratio taken pair by pair.)
    pairs, r = [], 1
    while get(f"pair{r}_empty_submit_c32") and get(f"pair{r}_deep_submit_c32"):
        pairs.append(100 * get(f"pair{r}_deep_submit_c32")[0] / get(f"pair{r}_empty_submit_c32")[0])
        r += 1
    if pairs:
        pairs.sort()
        derived(f"5. SubmitJob rate at depth ÷ empty, runs alternating with a second, empty server "
                f"(median of {len(pairs)} pair{'s' if len(pairs) > 1 else ''})", pairs[len(pairs) // 2], "%", ("≥", 80, "%"),
                note=f" ({pairs[0]:.0f}–{pairs[-1]:.0f})" if len(pairs) > 1 else "")
    derived("5. SubmitJob rate at depth ÷ empty" + (", the runs above" if pairs else ""),
            100 * dd[0] / e[0] if e and dd else None, "%", None if pairs else ("≥", 80, "%"))
    row("5. Scheduling cost: SubmitJob → RUNNING p50, empty queue", "empty_latency_running_p50")
    row(f"5. Scheduling cost: SubmitJob → RUNNING p50, {n} queued elsewhere", "deep_latency_running_p50")
    row(f"5. Restart to serving with {n} jobs", "deep_restart_to_serving", target=("≤", 5, "s"))
    row(f"5. Server RSS after the restart with {n} jobs", "deep_restarted_rss")

    mach = dict(kv.split("=", 1) for kv in meta.get("machine", "").split("; ") if "=" in kv)
    lines = [
        f"Run {raw.split('/')[-1][:-4]} (UTC), `{meta.get('config', '')}`"
        + (f"; figures replaced by the later run {'; '.join(later)}." if later else ""),
        "",
        f"Machine: {mach.get('cpu', '?')}, {mach.get('cores', '?')} cores, {mach.get('memory', '?')}, "
        f"kernel {mach.get('kernel', '?')}, Debian {mach.get('debian', '?')}, Drover commit "
        f"{mach.get('commit', '?')}; load average {mach.get('loadavg_at_start', '?')} at the start, "
        f"{meta.get('loadavg_at_end', '?')} at the end"
        + (f", {meta['steal_pct']} % of the CPU time stolen by the hypervisor" if 'steal_pct' in meta else "")
        + " (the machine is shared with other builds: ratios within the run matter more than absolutes).",
        "",
        "Figures are medians over the repeats (spread min–max in parentheses). Ratio = Drover ÷ peer "
        "(rates: higher is better for Drover; latencies and times: lower is better).",
        "",
        "| Scenario | Drover | Peer | Ratio | Target | Met? |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    peers = [re.sub(r"^.*\((moto [^)]*)\).*$", r"\1", figs[k][2])
             for k in ("moto_boto3_submit_t1",) if k in figs]
    sc = [l for r in raws for l in open(r) if l.startswith("slurm_config:")]
    lines += ["", "Peers:"]
    if sc:
        lines.append(f"- Slurm: {sc[0].split(':', 1)[1].strip()} (bench/peers/slurm.sh: single node "
                     "on loopback, no accounting, proctrack/linuxproc, no cgroups).")
    if peers:
        lines.append(f"- moto: {peers[0]}; batch backend without Docker: jobs are marked SUCCEEDED at "
                     "submission and nothing is durable.")
    failed = [l.strip() for r in raws for l in open(r) if l.startswith("# step failed")]
    if failed:
        lines += ["", "Steps that failed:"] + [f"- {l[2:]}" for l in failed]
    open(out, "w").write("\n".join(lines) + "\n")


def docs(doc, results):
    text = open(doc).read()
    body = open(results).read()
    name = results.split("/")[-1]
    section = (
        "## Latest comparison\n\n"
        "`bash bench/compare.sh` runs every scenario of issue #7 and the peers (Slurm, moto) "
        "on this machine in one run and writes `bench/results/<UTC time>.md` (raw lines in "
        "the `.log` beside it); it then copies the table here. `QUICK=1` is a smoke run with "
        "small sizes; `SCALE=1` adds scenario 5 (1,000,000 queued jobs), `ONLY=scale SCALE=1` "
        "runs it alone; sizes are environment variables listed at the top of the script. "
        f"This table: [`bench/results/{name}`](../bench/results/{name}).\n\n" + body)
    start = text.find("## Latest comparison")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    open(doc, "w").write(text)


main()
