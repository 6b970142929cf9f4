// EdgeVLJEPADemo: live-camera VL-JEPA on the native core (ExecuTorch), through the EdgeVLJEPA package.

import SwiftUI

@main
struct EdgeVLJEPADemoApp: App {
    @StateObject private var model = DemoModel()

    var body: some Scene {
        WindowGroup {
            ContentView()
                .environmentObject(model)
                .preferredColorScheme(.dark)
        }
    }
}
