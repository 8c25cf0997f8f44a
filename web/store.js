// What the dashboard knows: probes by serial, jobs by id, who is logged in. Views render from
// here and subscribe to changes; the event stream and the list reloads write into it.

export const state = {
  me: null,            // {name, role} from GET /api/v1/status
  probes: new Map(),   // serial → Probe
  jobs: new Map(),     // id → Job (the latest 200, plus every live one)
  lastJob: new Map(),  // serial → id of the newest job that ran on the probe
  rates: new Map(),    // job id → {t, done, rate}: bytes per second between progress events
  link: 'connecting',  // the event stream
};

const listeners = new Set();
let pending = false;

export function onChange(fn) {
  listeners.add(fn);
}

// Renders are batched to one per animation frame: a flash sends many progress events.
export function changed() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    for (const fn of listeners) fn();
  });
}

export function canAct() {
  return state.me && (state.me.role === 'operator' || state.me.role === 'admin');
}

// probe.state events carry only {serial, state, current_job}: merged over what is known.
export function putProbe(p) {
  state.probes.set(p.serial, { ...state.probes.get(p.serial), ...p });
}

// A job only moves forward: queued → running → a final state.
const STAGE = { queued: 0, running: 1 };
const stage = (j) => STAGE[j.state] ?? 2;

export function putJob(job) {
  const old = state.jobs.get(job.id);
  // An HTTP answer (the POST that queued it, a GET) can arrive after the event stream has
  // already said the job finished: the older snapshot must not take the job back to queued.
  if (old && stage(old) > stage(job)) return;
  // Progress arrives on its own events; a job.* event without it keeps the last one.
  if (old && old.progress && !job.progress && job.state === 'running') job.progress = old.progress;
  state.jobs.set(job.id, job);
  if (job.probe) {
    const last = state.lastJob.get(job.probe);
    if (last === undefined || job.id >= last) state.lastJob.set(job.probe, job.id);
  }
}

export function progress(p) {
  const job = state.jobs.get(p.id);
  if (!job) return;
  job.progress = { phase: p.phase, done: p.done, total: p.total, percent: p.percent };
  const now = performance.now();
  const r = state.rates.get(p.id);
  if (r && r.phase === p.phase && p.done > r.done && now > r.t) {
    const inst = ((p.done - r.done) * 1000) / (now - r.t);
    // Smoothed, so the figure is readable while it updates.
    state.rates.set(p.id, { t: now, done: p.done, phase: p.phase, rate: r.rate ? r.rate * 0.7 + inst * 0.3 : inst });
  } else if (!r || r.phase !== p.phase || p.done < r.done) {
    state.rates.set(p.id, { t: now, done: p.done, phase: p.phase, rate: 0 });
  }
}

export function isLive(job) {
  return job.state === 'queued' || job.state === 'running';
}
