/**
 * How `watch` shows a workflow's progress: plain lines (what changed; the default when
 * stdout is not a terminal), JSON lines for scripts (`--json`), or on a terminal a list of
 * the steps as they happen with a progress bar per copy (cli-progress).
 */
import { MultiBar, type SingleBar } from 'cli-progress';
import type { ProgressView } from '../../workflows/progress.js';
import { type CopyProgress, changedLines, type WatchSnapshot } from '../watch.js';

export interface WatchView {
  show(snapshot: WatchSnapshot): void;
  /** The run closed: stop drawing before the result is printed. */
  end(): void;
}

/** What changed, one line each (the CLI's output when not on a terminal). */
export function plainView(print: (line: string) => void): WatchView {
  let last: ProgressView | undefined;
  return {
    show({ progress }) {
      if (!progress) return;
      for (const line of changedLines(last, progress)) print(line);
      last = progress;
    },
    end() {},
  };
}

/** One JSON object per change: `{"event":"progress", step, outcome, members, parts, facts, copies}`. */
export function jsonView(print: (line: string) => void): WatchView {
  let last = '';
  return {
    show({ progress, copies, status }) {
      if (!progress) return;
      const { step, outcome, members, parts, facts, operation, userClusterName } = progress;
      const event = {
        event: 'progress',
        status,
        operation,
        userClusterName,
        step,
        outcome,
        members,
        parts,
        facts,
        copies,
      };
      const line = JSON.stringify(event);
      if (line !== last) print(line);
      last = line;
    },
    end() {},
  };
}

const MiB = 1024 * 1024;
const size = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

/**
 * On a terminal: the steps, one line each as they happen, and a bar per running copy. The
 * bars exist only while a copy runs (cli-progress draws them under the lines it logs).
 */
export function terminalView(stream: NodeJS.WriteStream): WatchView {
  let bars: MultiBar | undefined;
  const shown = new Map<string, SingleBar>();
  let logged = 0;
  const update = (copies: CopyProgress[]) => {
    for (const c of copies) {
      const payload = { done: size(c.bytesDone), size: size(c.totalBytes), step: c.step };
      const bar = shown.get(c.activityId);
      if (bar) {
        bar.setTotal(c.totalBytes);
        bar.update(c.bytesDone, payload);
        continue;
      }
      bars ??= new MultiBar({
        stream,
        format: ' {bar} {percentage}% {done}/{size} {step}',
        barsize: 30,
        hideCursor: true,
        clearOnComplete: true,
        fps: 5,
      });
      shown.set(c.activityId, bars.create(c.totalBytes, c.bytesDone, payload));
    }
    for (const [id, bar] of shown) {
      if (!copies.some((c) => c.activityId === id)) {
        bars?.remove(bar);
        shown.delete(id);
      }
    }
    if (bars && shown.size === 0) {
      bars.stop();
      bars = undefined;
    }
  };
  return {
    show({ progress, copies }) {
      update(copies);
      // The workflow keeps its whole log; print what is new since the last look.
      for (const entry of progress?.log.slice(logged) ?? []) {
        if (bars) bars.log(`  • ${entry}\n`);
        else stream.write(`  • ${entry}\n`);
      }
      logged = progress?.log.length ?? logged;
      // Draw now (the lines logged too), not at the next tick of cli-progress's timer.
      bars?.update();
    },
    end() {
      update([]);
    },
  };
}
