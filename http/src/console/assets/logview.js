// A live log in the page that a noisy source cannot freeze: lines are
// buffered and drawn once a frame, in one batch, with the view's size read
// once; the page keeps at most `cap` lines; pausing holds at most `cap`
// lines aside until resumed.

import {h} from './dom.js';

export class LogView {
  constructor(pre, cap) {
    this.pre = pre;
    this.cap = cap;
    this.pending = [];
    this.held = [];
    this.paused = false;
    this.scheduled = false;
    this.onheld = () => {};
  }

  push(text) {
    this.pending.push(text);
    if (this.pending.length > 2 * this.cap) this.pending = this.pending.slice(-this.cap);
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => this.draw());
    }
  }

  draw() {
    this.scheduled = false;
    const lines = this.pending.slice(-this.cap);
    this.pending = [];
    if (this.paused) {
      this.held = this.held.concat(lines).slice(-this.cap);
      this.onheld(this.held.length);
      return;
    }
    this.write(lines);
  }

  write(lines) {
    if (lines.length === 0) return;
    const pre = this.pre;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const batch = document.createDocumentFragment();
    for (const text of lines) batch.append(h('div', {class: 'line'}, text));
    pre.append(batch);
    let extra = pre.childElementCount - this.cap;
    while (extra-- > 0) pre.firstElementChild.remove();
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  pause() { this.paused = true; }

  resume() {
    this.paused = false;
    const held = this.held;
    this.held = [];
    this.onheld(0);
    this.write(held);
  }

  clear() { this.pending = []; this.held = []; this.pre.replaceChildren(); }
}
