// What already happened, then what happens: a node's history (GET /v1/history), then its
// event stream. The stream is opened first and what it brings while the history loads is
// kept, so that no event falls between the two; ids only increase, so none is shown twice.
"use strict";

(function (exports) {
  const WAITING_MAX = 10000;

  class Follower {
    constructor(apply) {
      this.apply = apply;
      this.lastId = null; // null: the history has not been loaded yet
      this.waiting = [];
    }

    receive(event) {
      if (this.lastId === null) {
        this.waiting.push(event);
        // Bounded like the rest of the page; the history covers what this drops.
        if (this.waiting.length > WAITING_MAX) this.waiting.shift();
        return;
      }
      if (event.id > this.lastId) {
        this.lastId = event.id;
        this.apply(event);
      }
    }

    load(history) {
      let last = 0;
      for (const event of history) {
        this.apply(event);
        if (event.id > last) last = event.id;
      }
      this.lastId = last;
      const waiting = this.waiting;
      this.waiting = [];
      for (const event of waiting) this.receive(event);
    }
  }

  exports.Follower = Follower;
})(typeof module === "object" && module.exports ? module.exports : window);
