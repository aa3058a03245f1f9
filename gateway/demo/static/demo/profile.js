// The profile picture form refuses a file over the upload limit before it
// is sent, in the words the upload page uses: nginx would otherwise answer
// a large one with its own bare 413 page once the whole file had gone up.
"use strict";

(function () {
  const form = document.getElementById("profile-picture");
  if (!form) {
    return;
  }
  const input = form.querySelector("input[type=file]");
  const problem = document.getElementById("picture-problem");
  const maxSize = Number(form.dataset.maxSize);
  const maxSizeLabel = form.dataset.maxSizeLabel;

  function check() {
    const file = input.files[0];
    const message =
      file && file.size > maxSize
        ? file.name + " is larger than the limit of " + maxSizeLabel + "; nothing was uploaded."
        : "";
    // The browser then refuses to submit the form, and says why.
    input.setCustomValidity(message);
    problem.textContent = message;
    problem.hidden = !message;
  }

  input.addEventListener("change", check);
  form.addEventListener("submit", function (event) {
    check();
    if (!input.checkValidity()) {
      event.preventDefault();
      input.focus();
    }
  });
})();
