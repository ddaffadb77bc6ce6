// The console's shell: the API key field, the tabs, and the three views.

import { AdminView } from "./admin";
import { apiKey, setApiKey } from "./api";
import { ChatView } from "./chat";
import { DocumentsView } from "./documents";
import { button, h } from "./dom";

interface View {
  el: HTMLElement;
  refresh(): void;
}

interface Tab {
  id: string;
  name: string;
  view: View;
  loaded: boolean;
}

function keyBox(onChange: () => void): HTMLElement {
  const input = h("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    value: apiKey(),
  });
  const state = h("span", { class: "key-state", role: "status" });
  const describe = (): void => {
    state.textContent = apiKey() ? "Key kept for this tab." : "No key: calls are anonymous.";
  };
  describe();
  input.addEventListener("input", () => {
    setApiKey(input.value);
    describe();
  });
  // Views reload once the key is complete, not on every keystroke.
  input.addEventListener("change", onChange);
  const forget = button("Forget key", () => {
    input.value = "";
    setApiKey("");
    describe();
    onChange();
    input.focus();
  });
  const form = h(
    "form",
    { class: "key-box" },
    h("label", { for: "api-key" }, "API key"),
    input,
    forget,
    state,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onChange();
  });
  return form;
}

function start(): void {
  const root = document.getElementById("app") ?? document.body;
  const chat = new ChatView();
  const tabs: Tab[] = [
    { id: "chat", name: "Chat", view: chat, loaded: false },
    { id: "documents", name: "Documents", view: new DocumentsView(), loaded: false },
    { id: "admin", name: "Admin", view: new AdminView(), loaded: false },
  ];
  const tabButtons: HTMLButtonElement[] = [];
  const panels: HTMLElement[] = [];

  const select = (index: number, focus: boolean): void => {
    tabs.forEach((tab, i) => {
      const selected = i === index;
      tabButtons[i].setAttribute("aria-selected", String(selected));
      tabButtons[i].tabIndex = selected ? 0 : -1;
      panels[i].hidden = !selected;
      if (selected && !tab.loaded) {
        tab.loaded = true;
        tab.view.refresh();
      }
    });
    if (focus) tabButtons[index].focus();
    const hash = `#${tabs[index].id}`;
    if (window.location.hash !== hash) history.replaceState(null, "", hash);
  };

  const tablist = h("div", { role: "tablist", "aria-label": "Views", class: "tabs" });
  tabs.forEach((tab, i) => {
    const tabButton = h(
      "button",
      {
        type: "button",
        role: "tab",
        id: `tab-${tab.id}`,
        "aria-controls": `panel-${tab.id}`,
        class: "tab",
      },
      tab.name,
    );
    tabButton.addEventListener("click", () => select(i, false));
    tabButton.addEventListener("keydown", (event) => {
      const moves: Record<string, number> = {
        ArrowRight: (i + 1) % tabs.length,
        ArrowLeft: (i - 1 + tabs.length) % tabs.length,
        Home: 0,
        End: tabs.length - 1,
      };
      if (event.key in moves) {
        event.preventDefault();
        select(moves[event.key], true);
      }
    });
    tabButtons.push(tabButton);
    tablist.append(tabButton);
    panels.push(
      h(
        "section",
        {
          role: "tabpanel",
          id: `panel-${tab.id}`,
          "aria-labelledby": `tab-${tab.id}`,
          class: "panel-root",
          tabindex: -1,
        },
        tab.view.el,
      ),
    );
  });

  const keyChanged = (): void => {
    // Reload what is on screen; the other views reload when next shown.
    tabs.forEach((tab, i) => {
      if (panels[i].hidden) tab.loaded = false;
      else tab.view.refresh();
    });
  };

  root.replaceChildren(
    h("a", { href: "#main", class: "skip-link" }, "Skip to content"),
    h(
      "header",
      { class: "top" },
      h("h1", {}, "Chatbot console"),
      keyBox(keyChanged),
      h("nav", { "aria-label": "Main" }, tablist),
    ),
    h("main", { id: "main", tabindex: -1 }, panels),
  );

  const fromHash = (): number => {
    const index = tabs.findIndex((t) => `#${t.id}` === window.location.hash);
    return index >= 0 ? index : 0;
  };
  window.addEventListener("hashchange", () => select(fromHash(), false));
  select(fromHash(), false);
  if (fromHash() === 0) chat.focus();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
