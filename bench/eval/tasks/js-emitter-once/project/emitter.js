// A small event emitter for the browser extension's background page.

export class Emitter {
  #listeners = new Map(); // event name -> array of listener functions, in the order added

  // Register listener for event; the same function may be registered more than once.
  on(event, listener) {
    if (typeof listener !== "function") {
      throw new TypeError("listener must be a function");
    }
    if (!this.#listeners.has(event)) {
      this.#listeners.set(event, []);
    }
    this.#listeners.get(event).push(listener);
    return this;
  }

  // Call every listener of event with args, in the order added (listeners added meanwhile wait for the next
  // emit); true when it had listeners.
  emit(event, ...args) {
    const listeners = this.#listeners.get(event);
    if (!listeners || listeners.length === 0) {
      return false;
    }
    for (const listener of [...listeners]) {
      listener.apply(this, args);
    }
    return true;
  }

  listenerCount(event) {
    return this.#listeners.get(event)?.length ?? 0;
  }
}
