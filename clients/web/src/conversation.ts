// The conversation the page keeps: the server holds no chat state, so every turn is sent again
// as `messages`, with the optional system prompt first.
import type { Turn } from "./client";

export class Conversation {
  readonly turns: Turn[] = [];

  /** Adds the user's turn and an empty answer that the stream fills in. */
  ask(text: string): Turn {
    this.turns.push({ role: "user", content: text });
    return this.answer();
  }

  /** Drops the last answer (if any) and opens a new one for the same user turn. */
  reask(): Turn {
    if (this.last()?.role === "assistant") this.turns.pop();
    return this.answer();
  }

  /** What to send for the open answer: every earlier turn, the system prompt first. */
  messages(system: string): Turn[] {
    const earlier = this.turns.slice(0, -1).map((turn) => ({ ...turn }));
    return system.trim() ? [{ role: "system", content: system.trim() }, ...earlier] : earlier;
  }

  /** An answer that ended before any text is not worth keeping as a turn. */
  dropEmptyAnswer(): void {
    const last = this.last();
    if (last?.role === "assistant" && last.content === "") this.turns.pop();
  }

  canReask(): boolean {
    return this.turns.some((turn) => turn.role === "user");
  }

  clear(): void {
    this.turns.length = 0;
  }

  private answer(): Turn {
    const turn: Turn = { role: "assistant", content: "" };
    this.turns.push(turn);
    return turn;
  }

  private last(): Turn | undefined {
    return this.turns[this.turns.length - 1];
  }
}
