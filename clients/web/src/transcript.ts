// Draws the conversation as a list of turns; the answer being streamed is the last item, and its
// text grows in place so a screen reader's live region announces only what is new.
import type { Turn } from "./client";

const WHO: Record<Turn["role"], string> = { system: "System", user: "You", assistant: "Model" };

export class Transcript {
  constructor(private readonly list: HTMLOListElement) {}

  /** Redraws every turn; cheap at chat sizes, and it keeps the page equal to the conversation. */
  render(turns: readonly Turn[]): void {
    this.list.replaceChildren(...turns.map((turn) => item(turn)));
  }

  /** Shows the streamed answer's text so far in the last item. */
  update(turn: Turn, note = ""): void {
    const last = this.list.lastElementChild as HTMLLIElement | null;
    if (last === null) return;
    last.querySelector(".text")!.textContent = turn.content;
    last.querySelector(".note")!.textContent = note;
    last.scrollIntoView({ block: "end" });
  }
}

function item(turn: Turn): HTMLLIElement {
  const li = document.createElement("li");
  li.className = "turn";
  li.dataset.role = turn.role;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = WHO[turn.role];
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = turn.content;
  const note = document.createElement("span");
  note.className = "note";
  li.append(who, text, note);
  return li;
}
