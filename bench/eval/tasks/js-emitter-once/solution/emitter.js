// A small event emitter for the browser extension's background page.

export class Emitter {
  // event name -> array of {listener, once} registrations, in the order added
  #listeners = new Map();

  #add(event, listener, once) {
    if (typeof listener !== "function") {
      throw new TypeError("listener must be a function");
    }
    if (!this.#listeners.has(event)) {
      this.#listeners.set(event, []);
    }
    this.#listeners.get(event).push({ listener, once });
    return this;
  }

  // Register listener for event; the same function may be registered more than once.
  on(event, listener) {
    return this.#add(event, listener, false);
  }

  // Register listener to run at most once; it is removed before it is called.
  once(event, listener) {
    return this.#add(event, listener, true);
  }

  // Remove the most recently added registration of listener for event, if any.
  off(event, listener) {
    const registrations = this.#listeners.get(event);
    if (registrations) {
      for (let index = registrations.length - 1; index >= 0; index -= 1) {
        if (registrations[index].listener === listener) {
          registrations.splice(index, 1);
          break;
        }
      }
    }
    return this;
  }

  // Call every listener of event with args, in the order added (listeners added meanwhile wait for the next
  // emit); true when it had listeners.
  emit(event, ...args) {
    const registrations = this.#listeners.get(event);
    if (!registrations || registrations.length === 0) {
      return false;
    }
    for (const registration of [...registrations]) {
      if (registration.once) {
        const index = registrations.indexOf(registration);
        if (index === -1) {
          continue; // removed by an earlier listener of this emit
        }
        registrations.splice(index, 1);
      }
      registration.listener.apply(this, args);
    }
    return true;
  }

  listenerCount(event) {
    return this.#listeners.get(event)?.length ?? 0;
  }
}
