#!/usr/bin/env bash
# Draws the curves of one or more `pgolf train` runs from their metrics.jsonl
# into one picture of four panels: train loss against step, val_bpb against
# step (with each run's final sliding-window val_bpb as a star), train loss
# against training time (s, train_time_ms) and step time against step
# (ms/step = delta train_time_ms / delta step between consecutive train
# events, drawn flat over each interval; log scale when it spans more than
# 5x). Runs are overlaid, one colour each; the legend under the panels names
# each by its folder (the RUN_ID) with its final sliding-window val_bpb, or
# "running, step N" without a final event. After a resume event (pgolf train
# --resume) the steps past its checkpoint are drawn once, from the resumed
# run. Works on runs still in progress
# (a half-written last line is skipped) and on runs without val events; fails,
# naming the folder, when a run has no metrics.jsonl, an empty one or no train
# or val event in it. Needs gnuplot (Debian gnuplot-nox, installed by
# scripts/setup.sh) and python3 (standard library only).
#
#   scripts/plot_runs.sh RUN_DIR... [--output FILE.png|FILE.svg]
#   scripts/plot_runs.sh logs/demo
#   scripts/plot_runs.sh logs/s_seed1337 logs/s_seed42 --output logs/s_sweep.png
#
# Default output: RUN_DIR/plot.png for one run, sweep.png next to the first
# run's folder for several. FILE.svg writes an SVG instead of a PNG. The
# file is written under a temporary name and renamed, so it is never
# half-written. Prints the path of the picture.
#
# Variables:
#   GNUPLOT           the gnuplot binary (default gnuplot)
#   PLOT_SIZE         picture size in pixels, WIDTHxHEIGHT (default 1600x1100)
#   PLOT_KEEP_DATA=1  keep the temporary folder of TSV files and the gnuplot
#                     script (its path is printed)
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
}
usage_error() {
  echo "plot_runs: $*" >&2
  echo "usage: scripts/plot_runs.sh RUN_DIR... [--output FILE.png|FILE.svg] (--help for more)" >&2
  exit 2
}
die() {
  echo "plot_runs: $*" >&2
  exit 1
}

runs=()
output=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --output) [[ $# -ge 2 ]] || die "--output needs a file name"; output=$2; shift 2 ;;
    --output=*) output=${1#--output=}; shift ;;
    -h|--help) usage ;;
    --) shift; runs+=("$@"); break ;;
    -*) usage_error "unknown option $1" ;;
    *) runs+=("${1%/}"); shift ;;
  esac
done
[[ ${#runs[@]} -gt 0 ]] || usage_error "no run folder given"
for run in "${runs[@]}"; do
  [[ -d $run ]] || die "$run: no such run folder"
  [[ -f $run/metrics.jsonl ]] || die "$run: no metrics.jsonl in this folder (not a pgolf train run, or it has not started)"
  [[ -s $run/metrics.jsonl ]] || die "$run: metrics.jsonl is empty (the run has not logged anything yet)"
done

GNUPLOT=${GNUPLOT:-gnuplot}
command -v "$GNUPLOT" >/dev/null ||
  die "gnuplot not found (install the Debian package gnuplot-nox: bash scripts/setup.sh, or apt-get install gnuplot-nox)"
size=${PLOT_SIZE:-1600x1100}
[[ $size =~ ^[0-9]+x[0-9]+$ ]] || die "PLOT_SIZE must be WIDTHxHEIGHT in pixels, not '$size'"

if [[ -z $output ]]; then
  if [[ ${#runs[@]} -eq 1 ]]; then
    output=${runs[0]}/plot.png
  else
    output=$(dirname "${runs[0]}")/sweep.png
  fi
fi
case $output in
  *.png) format=png ;;
  *.svg) format=svg ;;
  *) die "--output must end in .png or .svg: $output" ;;
esac
out_dir=$(dirname "$output")
[[ -d $out_dir ]] || die "the folder of the output does not exist: $out_dir"

work=$(mktemp -d "${TMPDIR:-/tmp}/plot_runs.XXXXXX")
partial=""
cleanup() {
  [[ -n $partial ]] && rm -f "$partial"
  if [[ ${PLOT_KEEP_DATA:-0} == 1 ]]; then echo "plot_runs: data and gnuplot script kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
# Same folder as the output, so the final rename is atomic.
partial=$(mktemp "$out_dir/.plot_runs.XXXXXX.$format" 2>/dev/null) || die "cannot write in the folder of the output: $out_dir"

# Extraction: one TSV per run and series, then the gnuplot script (only the
# series that have points, so gnuplot never sees an empty file).
python3 - "$work" "$partial" "$format" "${size%x*}" "${size#*x}" "${runs[@]}" <<'PY'
import json, math, os, sys

work, output, fmt, width, height = sys.argv[1:6]
runs = sys.argv[6:]
# Colour-blind-friendly palette (Okabe-Ito, then Tableau), cycled past 10 runs.
colours = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
           "#000000", "#8C564B", "#7F7F7F", "#BCBD22"]

def fail(msg):
    print(f"plot_runs: {msg}", file=sys.stderr)
    sys.exit(1)

def number(event, key):
    v = event.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)

def gp_string(s):
    # A gnuplot double-quoted string (the terminal is noenhanced, so only
    # backslash and quote are special); unprintable characters are dropped.
    return '"' + "".join("\\" + c if c in '\\"' else c for c in s if c.isprintable()) + '"'

def write_tsv(name, rows):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        for row in rows:
            f.write("\t".join(repr(x) for x in row) + "\n")
    return path

series = {"loss": [], "bpb": [], "final": [], "wall": [], "steptime": []}
key_entries = []  # (label, gnuplot line style) per run
for i, run in enumerate(runs):
    name = os.path.basename(os.path.normpath(run)) or run
    path = os.path.join(run, "metrics.jsonl")
    train, val, final, bad, lines = [], [], None, 0, 0
    with open(path, errors="replace") as f:
        text = f.read()
    # A last line without its newline is being written by a run in progress.
    complete = text.endswith("\n")
    all_lines = text.split("\n")
    for n, line in enumerate(all_lines):
        line = line.strip()
        if not line:
            continue
        lines += 1
        try:
            event = json.loads(line)
        except ValueError:
            if complete or n < len(all_lines) - 1:
                bad += 1
            continue
        if not isinstance(event, dict):
            bad += 1
            continue
        kind, step, t = event.get("event"), number(event, "step"), number(event, "train_time_ms")
        if kind == "train" and step is not None:
            train.append((step, number(event, "train_loss"), t))
        elif kind == "val" and step is not None and number(event, "val_bpb") is not None:
            val.append((step, number(event, "val_bpb")))
        elif kind == "resume" and step is not None:
            # A resumed run redoes the steps after its checkpoint: the later copies stand.
            train = [r for r in train if r[0] <= step]
            val = [r for r in val if r[0] <= step]
        elif kind == "final":
            final = event
    if lines == 0:
        fail(f"{run}: metrics.jsonl is empty (the run has not logged anything yet)")
    if not train and not val:
        fail(f"{run}: metrics.jsonl has no train or val event ({lines} lines, {bad} unreadable)")
    if bad:
        print(f"plot_runs: {run}: skipped {bad} unreadable line(s) of metrics.jsonl", file=sys.stderr)
    train.sort(key=lambda r: r[0])
    val.sort(key=lambda r: r[0])

    final_bpb = number(final, "val_bpb") if final else None
    if final_bpb is not None:
        label = f"{name}  (final {final_bpb:.4f})"
    elif final is not None:
        label = f"{name}  (finished, no val_bpb)"
    else:
        label = f"{name}  (running, step {max([r[0] for r in train + val]):.0f})"
    # Past ten runs the colours come round again, dashed.
    colour = f"lc rgb '{colours[i % len(colours)]}' dt {i // len(colours) % 5 + 1}"
    key_entries.append((label, colour))

    def add(key, rows, columns):
        if rows:
            series[key].append((write_tsv(f"run{i}_{key}.tsv", rows), columns, colour, label, i))

    add("loss", [(s, l) for s, l, _ in train if l is not None], "1:2")
    add("wall", [(t / 1000, l) for s, l, t in train if l is not None and t is not None], "1:2")
    add("bpb", val, "1:2")
    # ms per step between consecutive train events: a flat step over each
    # interval (gnuplot's fsteps draws a point's value back to the one before,
    # so the first interval also starts with its own value).
    timed = [(s, t) for s, _, t in train if t is not None]
    rates = [(s0, s1, (t1 - t0) / (s1 - s0)) for (s0, t0), (s1, t1) in zip(timed, timed[1:]) if s1 > s0]
    add("steptime", [(rates[0][0], rates[0][2])] + [(s1, v) for _, s1, v in rates] if rates else [], "1:2")
    if final_bpb is not None:
        steps = number(final, "steps")
        if steps is None:
            steps = max([r[0] for r in train + val])
        add("final", [(steps, final_bpb)], "1:2")

def values(key, column=1):
    return [float(line.split("\t")[column]) for path, *_ in series[key] for line in open(path)]

width, height = int(width), int(height)
if series["final"]:
    key_entries.append(("final, sliding window (val_bpb)", None))
# Layout in pixels: the title, two rows of two panels, then one legend for all
# four panels across the bottom, in as many columns as fit (about 10 px a
# character at this font); past two rows of it the picture grows.
# Sizes are for 1600x1100; for other sizes line widths scale with the
# picture, fonts (and the room for text) with its square root.
line_scale = max(0.4, min(width / 1600, height / 1100))
scale = line_scale ** 0.5
px = lambda n: int(round(n * scale))
font = lambda pt: f"font ',{max(6, round(pt * scale))}'"
entry_px = px(10 * max(len(l) for l, _ in key_entries) + 90)
columns = max(1, min(len(key_entries), int(0.96 * width) // entry_px))
key_rows = -(-len(key_entries) // columns)
height += px(25) * max(0, key_rows - 2)
key_px = px(25 * key_rows + 20)
top_px, xlabel_px, title_px = px(100), px(60), px(70)
panel_px = (height - top_px - key_px - 2 * (xlabel_px + title_px) + title_px) // 2
second_px = top_px + panel_px + xlabel_px + title_px
rows_px = [(top_px, top_px + panel_px), (second_px, second_px + panel_px)]
cols_frac = [(px(104) / width, 0.5 - px(48) / width), (0.5 + px(120) / width, 1 - px(32) / width)]

term = (f'set terminal pngcairo size {width},{height} noenhanced font "DejaVu Sans,{max(6, round(12 * scale))}" linewidth {1.5 * line_scale:.2f}'
        if fmt == "png" else
        f'set terminal svg size {width},{height} dynamic noenhanced font "DejaVu Sans,{max(6, round(12 * scale))}" linewidth {1.5 * line_scale:.2f} background "white"')
names = [os.path.basename(os.path.normpath(r)) for r in runs]
title = "pgolf runs: " + ", ".join(names)
if len(title) > width // px(10):
    title = f"pgolf: {len(runs)} runs, {names[0]} ... {names[-1]}"
gp = [term,
      f"set output {gp_string(output)}",
      'set datafile separator "\\t"',
      "set border 3 lc rgb '#444444'",
      "set key off",
      # Axes start at 0 and end a little past the last point, so no point
      # sits on an axis (offsets apply only to the autoscaled ends).
      "set offsets 0, graph 0.03, graph 0.05, graph 0.05",
      f"set multiplot title {gp_string(title)} {font(15)}"]

def screen_y(px):
    return f"{1 - px / height:.4f}"

def panel(row, col, title, xlabel, ylabel, keys, empty, log_ratio=None):
    (t, b), (l, r) = rows_px[row], cols_frac[col]
    gp.append(f"set lmargin at screen {l:.4f}; set rmargin at screen {r:.4f}; "
              f"set tmargin at screen {screen_y(t)}; set bmargin at screen {screen_y(b)}")
    gp.append("unset label; unset logscale y; set xtics nomirror out autofreq; set ytics nomirror out autofreq; "
              "set mytics default")
    gp.append("set grid xtics ytics mytics lc rgb '#d0d0d0' lw 0.6, lc rgb '#ececec' lw 0.4")
    gp.append("set xrange [0:*]; set yrange [*:*]; set autoscale xfixmax; set autoscale yfix")
    gp.append(f"set title {gp_string(title)} {font(13)}")
    gp.append(f"set xlabel {gp_string(xlabel)}")
    items = []
    for key in keys:
        for path, cols, colour, label, i in series[key]:
            if key == "final":
                items.append(f"{gp_string(path)} using {cols} with points pt 3 ps {2.5 * scale:.2f} lw 1.5 {colour} notitle")
            elif key == "steptime":
                items.append(f"{gp_string(path)} using {cols} with fsteps lw 1.5 {colour} notitle")
            else:
                items.append(f"{gp_string(path)} using {cols} with linespoints pt 7 ps {0.5 * scale:.2f} lw 1.5 {colour} notitle")
    ranges = ""
    if not items:
        gp.append(f"set label 1 {gp_string(empty)} at graph 0.5,0.5 center {font(13)} tc rgb '#888888'")
        ranges = "[0:1][0:1] "
        gp.append("unset xtics; unset ytics; unset grid")
        items.append("NaN notitle")
    else:
        # A single value (one point, or a flat curve): give gnuplot a range
        # around it rather than let it warn.
        for axis, column in (("x", 0), ("y", 1)):
            vs = [v for k in keys for v in values(k, column)]
            if min(vs) == max(vs):
                pad = max(abs(vs[0]) * 0.05, 0.5 if axis == "y" else 1)
                gp.append(f"set {axis}range [{max(0, vs[0] - pad) if axis == 'x' else vs[0] - pad:g}:{vs[0] + pad:g}]")
        ys = [y for k in keys for y in values(k)]
        lo, hi = min(ys), max(ys)
        if log_ratio and lo > 0 and hi / lo > log_ratio:
            # Labelled tics at 1, 2 and 5 times the powers of ten in range
            # (gnuplot labels only the decades).
            gp.append("set logscale y; set mytics 10")
            tics = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
                    for m in (1, 2, 5) if lo / 1.3 <= m * 10.0 ** e <= hi * 1.3]
            gp.append("set ytics (" + ", ".join(f"'{t:g}' {t:g}" for t in tics) + ")")
            ylabel += " (log scale)"
    gp.append(f"set ylabel {gp_string(ylabel)}")
    gp.append("plot " + ranges + ", \\\n     ".join(items))

panel(0, 0, "train loss", "step", "train loss (nats/token)", ["loss"], "no train events")
panel(0, 1, "val_bpb (star: final, sliding window)", "step", "val_bpb (bits/byte)", ["bpb", "final"], "no val events")
panel(1, 0, "train loss against training time", "training time (s)", "train loss (nats/token)", ["wall"], "no train events")
panel(1, 1, "step time (between consecutive train events)", "step", "ms/step", ["steptime"],
      "fewer than 2 train events", log_ratio=5)
# The legend: a frameless plot of nothing across the bottom.
gp += ["unset label; unset title; unset xlabel; unset ylabel; unset logscale y; unset grid; unset border; unset tics",
       f"set lmargin at screen 0.02; set rmargin at screen 0.98; set tmargin at screen {screen_y(height - key_px)}; "
       "set bmargin at screen 0.002",
       f"set key center center vertical maxrows {key_rows} reverse Left box lc rgb '#aaaaaa' samplen 2.5 spacing 1.3 width 1 {font(12)}"]
legend = [f"NaN with linespoints pt 7 ps {0.8 * scale:.2f} lw 2.5 {c} title {gp_string(l)}" if c else
          f"NaN with points pt 3 ps {2 * scale:.2f} lw 1.5 lc rgb '#444444' title {gp_string(l)}" for l, c in key_entries]
gp.append("plot [0:1][0:1] " + ", \\\n     ".join(legend))
gp.append("unset multiplot")
gp.append("set output")
with open(os.path.join(work, "plot.gp"), "w") as f:
    f.write("\n".join(gp) + "\n")
PY

if ! "$GNUPLOT" "$work/plot.gp" >"$work/gnuplot.log" 2>&1 || [[ ! -s $partial ]]; then
  cat "$work/gnuplot.log" >&2
  die "gnuplot failed (rerun with PLOT_KEEP_DATA=1 to keep its script and data)"
fi
# Anything gnuplot said (warnings; the script avoids the usual ones).
grep -v '^$' "$work/gnuplot.log" >&2 || true
chmod 644 "$partial"
mv -f "$partial" "$output"
partial=""
echo "plot: $output"
