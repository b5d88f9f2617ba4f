// Watches the console's modules load. A module that fails to arrive (a
// dropped connection under load) stops the whole module graph, leaving the
// page at "Loading…": the page is reloaded once, and if that fails too it
// says so instead of loading forever.
(function () {
  'use strict';
  var entry = document.currentScript && document.currentScript.previousElementSibling;
  if (!entry || entry.type !== 'module') return;
  entry.addEventListener('error', function () {
    var key = 'skypanel-console-reloaded';
    var last = Number(sessionStorage.getItem(key) || 0);
    if (Date.now() - last > 60000) {
      sessionStorage.setItem(key, String(Date.now()));
      location.reload();
      return;
    }
    var main = document.getElementById('main');
    if (main) {
      main.textContent = 'The console could not load its scripts. Check the connection and reload the page.';
    }
  });
})();
