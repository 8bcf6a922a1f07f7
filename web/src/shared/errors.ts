// Turns a failed call into what a person wants to read: the field violations of a
// google.rpc.BadRequest next to their fields, "try again" when the service is only away for a
// moment, and how long to wait when the edge rate-limits (RetryInfo or Retry-After).
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { h } from "./dom.js";

/** A failure, ready to show. */
export interface Problem {
  /** The gRPC code (Code.Unknown for a network failure that carried none). */
  code: Code;
  /** One sentence for the person. */
  message: string;
  /** Field path (`shipping_address.postal_code`) → what is wrong with it. */
  fields: Map<string, string>;
  /** Whether the same request may simply be sent again later. */
  retryable: boolean;
  /** Seconds to wait before trying again, when the server said. */
  waitSeconds?: number;
}

function waitOf(err: ConnectError): number | undefined {
  for (const info of err.findDetails(RetryInfoSchema)) {
    const delay = info.retryDelay;
    if (delay) return Math.max(1, Math.ceil(Number(delay.seconds) + delay.nanos / 1e9));
  }
  const header = Number(err.metadata.get("retry-after") ?? "");
  return Number.isFinite(header) && header > 0 ? Math.ceil(header) : undefined;
}

/** What went wrong, from any thrown value. */
export function problemOf(thrown: unknown): Problem {
  const err = ConnectError.from(thrown);
  const fields = new Map<string, string>();
  for (const bad of err.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) {
      const prior = fields.get(v.field);
      fields.set(v.field, prior ? `${prior}; ${v.description}` : v.description);
    }
  }
  const detail = err.rawMessage;
  const problem = (message: string, retryable = false, waitSeconds?: number): Problem => ({
    code: err.code,
    message,
    fields,
    retryable,
    waitSeconds,
  });
  switch (err.code) {
    case Code.InvalidArgument:
      return problem(fields.size > 0 ? "Please correct the marked fields." : `That was not accepted: ${detail}`);
    case Code.Unauthenticated:
      return problem("Your sign-in is not valid (or has expired). Please sign in again.");
    case Code.PermissionDenied:
      return problem("This account is not allowed to do that.");
    case Code.NotFound:
      return problem("We could not find that. It may have been removed.");
    case Code.AlreadyExists:
      return problem(`That already exists: ${detail}`);
    case Code.FailedPrecondition:
    case Code.Aborted:
    case Code.OutOfRange:
      return problem(`That cannot be done now: ${detail}`);
    case Code.ResourceExhausted: {
      const wait = waitOf(err);
      const when = wait ? `in ${wait} second${wait === 1 ? "" : "s"}` : "in a moment";
      return problem(`Too many requests right now. Please wait and try again ${when}.`, true, wait);
    }
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return problem("The shop could not be reached just now. Please try again.", true, waitOf(err));
    case Code.Unknown:
    case Code.Canceled:
      if (thrown instanceof TypeError || /fetch|network|load failed/i.test(detail)) {
        return problem("The shop is unreachable (network error). Please try again.", true);
      }
      return problem("Something went wrong on our side. Please try again.", true);
    default:
      return problem("Something went wrong on our side. We are looking into it.");
  }
}

/** Where a page signs in, to offer a link when a call was UNAUTHENTICATED (set by the page). */
export const signIn: { href?: string } = {};

/** Shows `problem` in `box` (role=alert), with a "Try again" button when `retry` is given and
 * the failure is transient, and marks the fields of `form` that it names. */
export function showProblem(box: HTMLElement, problem: Problem, retry?: () => void, form?: HTMLFormElement): void {
  box.replaceChildren(h("p", {}, problem.message));
  box.hidden = false;
  box.setAttribute("role", "alert");
  const unplaced: string[] = [];
  if (form) clearFieldErrors(form);
  for (const [field, text] of problem.fields) {
    const input = form?.querySelector<HTMLInputElement>(`[name="${CSS.escape(field)}"]`);
    if (input && form) {
      const id = `${input.id || field}-error`;
      const note = h("p", { class: "field-error", id }, text);
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", id);
      input.closest(".field")?.append(note) ?? input.after(note);
    } else {
      unplaced.push(`${field}: ${text}`);
    }
  }
  if (unplaced.length > 0) box.append(h("ul", {}, ...unplaced.map((u) => h("li", {}, u))));
  if (problem.code === Code.Unauthenticated && signIn.href) box.append(h("p", {}, h("a", { href: signIn.href }, "Sign in")));
  if (retry && problem.retryable) {
    box.append(h("button", { type: "button", class: "retry", onclick: () => retry() }, "Try again"));
  }
}

/** Removes the marks `showProblem` put on `form`. */
export function clearFieldErrors(form: HTMLFormElement): void {
  form.querySelectorAll(".field-error").forEach((n) => n.remove());
  form.querySelectorAll("[aria-invalid]").forEach((n) => {
    n.removeAttribute("aria-invalid");
    n.removeAttribute("aria-describedby");
  });
}
