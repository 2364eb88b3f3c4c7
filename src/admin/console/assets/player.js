// Replays asciicast events into a terminal with their timing: play/pause,
// speed 1x, 2x or 8x, and a progress bar. Pauses longer than MAX_GAP_S are
// shortened to it (as `jitgate play` does), so an idle hour does not stall
// the replay.

import { h, setText } from './dom.js';
import { duration } from './format.js';

const MAX_GAP_S = 2;
const SPEEDS = [1, 2, 8];

export function player(controls, status, rv, events) {
  // Replay time of each event, gaps capped.
  const at = [];
  let t = 0;
  let prev = 0;
  for (const e of events) {
    const raw = Array.isArray(e) && Number.isFinite(Number(e[0])) ? Number(e[0]) : prev;
    t += Math.min(MAX_GAP_S, Math.max(0, raw - prev));
    prev = raw;
    at.push(t);
  }
  const total = t;
  let next = 0; // index of the next event to write
  let clock = 0; // replay seconds reached
  let speed = 1;
  let playing = false;
  let timer = 0;
  let lastTick = 0;

  const toggle = h('button', { type: 'button', class: 'primary', id: 'player-toggle', text: 'Pause' });
  const speedSel = h('select', { id: 'player-speed' }, SPEEDS.map((s) => h('option', { value: String(s), text: `${s}x` })));
  const bar = h('progress', { id: 'player-progress', max: Math.max(total, 0.001), value: 0, 'aria-label': 'Replay progress' });
  const pos = h('span', { class: 'player-pos', id: 'player-pos' });
  controls.append(toggle, h('label', { for: 'player-speed', text: 'Speed' }), speedSel, bar, pos);

  toggle.addEventListener('click', () => (playing ? pause() : play()));
  speedSel.addEventListener('change', () => { speed = Number(speedSel.value) || 1; });

  function show() {
    bar.value = Math.min(clock, total);
    setText(pos, `${duration(clock)} / ${duration(total)}`);
  }

  function tick() {
    const now = performance.now();
    clock += ((now - lastTick) / 1000) * speed;
    lastTick = now;
    while (next < events.length && at[next] <= clock) {
      rv.feed(events[next]);
      next += 1;
    }
    if (next >= events.length) {
      clock = total;
      show();
      finish();
      return;
    }
    show();
    timer = setTimeout(tick, Math.max(10, Math.min(100, ((at[next] - clock) * 1000) / speed)));
  }

  function play() {
    if (next >= events.length) return;
    playing = true;
    setText(toggle, 'Pause');
    setText(status, 'Playing.');
    lastTick = performance.now();
    tick();
  }

  function pause() {
    playing = false;
    clearTimeout(timer);
    setText(toggle, 'Play');
    setText(status, 'Paused.');
  }

  function finish() {
    playing = false;
    toggle.disabled = true;
    setText(toggle, 'Play');
    // Finished once the terminal has parsed the last write.
    const done = () => {
      setText(status, 'Replay finished.');
      status.dataset.done = 'true';
    };
    if (rv.term) rv.term.write('', done);
    else done();
  }

  show();
  return {
    play,
    pause,
    stop() {
      pause();
      rv.reset();
    },
  };
}
